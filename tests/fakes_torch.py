"""Stand-ins for the PyTorch models whose weights no package ships (Kokoro .pth, Chatterbox).

They are injected through the backends' documented seams (``model_factory`` /
``engine_factory``) and behave like the real models where the adapters depend on it: the same
methods, argument and return shapes, dtypes and sample rates; blocking calls that take a
little time in the worker thread; a stop check between "layers" and tokens, as the real models
get from :func:`gateway.backends.workers.install_interrupt_hooks`; per-token generation. They
also record what the adapters did to them (threads, concurrency, calls), for the tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import threading
import time
import wave
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gateway.backends.kokoro_torch import Checkpoint
from gateway.backends.workers import checkpoint

KOKORO_SAMPLES_PER_FRAME = 600  # Kokoro's decoder: 600 samples (25 ms) per duration frame
CHATTERBOX_SAMPLES_PER_TOKEN = 960  # S3Gen: 25 speech tokens per second at 24 kHz


@dataclass
class Activity:
    """What a stand-in saw: how many calls ran at once, on which threads, how they ended."""

    active: int = 0
    max_active: int = 0
    threads: set[str] = field(default_factory=set)
    completed: int = 0
    interrupted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.threads.add(threading.current_thread().name)

    def leave(self, *, completed: bool) -> None:
        with self.lock:
            self.active -= 1
            if completed:
                self.completed += 1
            else:
                self.interrupted += 1


async def until(condition: Callable[[], bool], deadline_s: float) -> None:
    """Wait until a worker thread has made ``condition`` true (the deadline only guards
    against a hang; nothing is asserted about time)."""
    async with asyncio.timeout(deadline_s):
        for _ in itertools.count():
            if condition():
                return
            await asyncio.sleep(0.001)


def wait_interruptibly(gate: threading.Event) -> None:
    """Block until ``gate`` is set, stopping (like a model layer) if the request is stopped."""
    while not gate.wait(0.005):
        checkpoint()


# -- Kokoro ------------------------------------------------------------------------------------


class FakeKModel:
    """Stand-in for ``kokoro.KModel`` as wrapped by ``TorchKokoroModel`` (numpy in and out).

    ``forward_with_tokens`` checks the inputs the real model needs (``(1, n + 2)`` int64 ids
    with 0 pads, a ``(1, 256)`` style row), runs ``layers`` steps of ``layer_s`` seconds with a
    stop check before each (as the real model's layer hooks do), and returns a tone per phoneme
    (silence for spaces and punctuation) of 600 samples per predicted frame, with the per-input
    durations (pads included) as int64. If ``hold`` is given, the pass waits in its first layer
    until it is set (or the request is stopped); ``entered`` is set when a pass starts.
    """

    def __init__(
        self,
        checkpoint_files: Checkpoint,
        device: str,
        *,
        layers: int = 4,
        layer_s: float = 0.002,
        hold: threading.Event | None = None,
    ) -> None:
        config = json.loads(checkpoint_files.config.read_text(encoding="utf-8"))
        self.vocab: Mapping[str, int] = dict(config["vocab"])
        self.device = "cpu" if device == "auto" else device
        self.layers = layers
        self.layer_s = layer_s
        self.hold = hold
        self.entered = threading.Event()
        self.activity = Activity()
        self.calls: list[tuple[NDArray[np.int64], NDArray[np.float32], float]] = []
        symbols = {index: symbol for symbol, index in self.vocab.items()}
        self._silent = {index for index, symbol in symbols.items() if not symbol.isalpha()}

    def load_voice(self, path: Path) -> NDArray[np.float32]:
        with path.open("rb") as stream:  # the stand-in packs are .npy data in .pt files
            return np.asarray(np.load(stream), dtype=np.float32)

    def durations(self, input_ids: NDArray[np.int64], speed: float) -> NDArray[np.int64]:
        """Frames per input: pads 3 and 2, vowels-ish 3 to 5, others 2 (divided by speed)."""
        base = np.array([2 + int(i) % 4 for i in input_ids[0]], dtype=np.float64)
        base[0], base[-1] = 3, 2
        return np.maximum(1, np.round(base / speed)).astype(np.int64)

    def forward_with_tokens(
        self, input_ids: NDArray[np.int64], ref_s: NDArray[np.float32], speed: float
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        assert input_ids.dtype == np.int64
        assert input_ids.ndim == 2
        assert input_ids.shape[0] == 1
        assert input_ids[0, 0] == 0, "inputs are padded with 0"
        assert input_ids[0, -1] == 0, "inputs are padded with 0"
        assert ref_s.shape == (1, 256)
        assert ref_s.dtype == np.float32
        self.calls.append((input_ids.copy(), ref_s.copy(), speed))
        self.activity.enter()
        self.entered.set()
        completed = False
        try:
            for layer in range(self.layers):
                checkpoint()
                if layer == 0 and self.hold is not None:
                    wait_interruptibly(self.hold)
                time.sleep(self.layer_s)
            durations = self.durations(input_ids, speed)
            audio = np.concatenate(
                [self._sound(int(i), int(d)) for i, d in zip(input_ids[0], durations, strict=True)]
            )
            completed = True
            return audio.astype(np.float32), durations
        finally:
            self.activity.leave(completed=completed)

    def _sound(self, token: int, frames: int) -> NDArray[np.float32]:
        n = frames * KOKORO_SAMPLES_PER_FRAME
        if token == 0 or token in self._silent:
            return np.zeros(n, np.float32)
        t = np.arange(n) / 24000
        return (0.3 * np.sin(2 * np.pi * (150 + 10 * (token % 20)) * t)).astype(np.float32)


def write_kokoro_checkpoint(directory: Path, voices: Sequence[str] = ("af_heart",)) -> Path:
    """A checkpoint directory laid out like the Kokoro-82M release, for the stand-in model.

    ``config.json`` carries the real Kokoro v1.0 vocabulary (the one kokoro-onnx ships); the
    weights file is a placeholder (the stand-in builds no network) and each voice pack is
    ``(510, 1, 256)`` float32 stored as .npy data.
    """
    from kokoro_onnx.config import DEFAULT_VOCAB

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"vocab": DEFAULT_VOCAB}), encoding="utf-8")
    (directory / "kokoro-v1_0.pth").write_bytes(b"stand-in weights")
    (directory / "voices").mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    for name in voices:
        with (directory / "voices" / f"{name}.pt").open("wb") as stream:
            np.save(stream, rng.standard_normal((510, 1, 256)).astype(np.float32))
    return directory


# -- Chatterbox --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeConditionals:
    """Stand-in for ``chatterbox.tts.Conditionals``: who speaks, and how expressively."""

    pitch_hz: float
    exaggeration: float
    source: str


class FakeChatterbox:
    """Stand-in for ``ChatterboxTTS`` as driven by ``TorchChatterboxEngine``.

    ``speech_tokens`` generates about 1.5 tokens per character, one at a time, each after
    ``token_s`` seconds and a stop check (as the real T3 loop runs one step per token); if
    ``gate`` is given, generation waits before token ``gate_after`` until it is set. ``vocode``
    renders 960 samples per token at 24 kHz: a tone whose pitch follows the token and the voice,
    phase-continuous within one call but starting at a new phase on every call (as S3Gen's
    HiFT excitation does), with S3Gen's 40 ms fade-in at the start of every call.
    """

    sr = 24000

    def __init__(
        self,
        checkpoint_dir: Path,
        device: str,
        *,
        token_s: float = 0.0005,
        gate: threading.Event | None = None,
        gate_after: int = 15,
        fail_after: int | None = None,
    ) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.fail_after = fail_after
        self.events: list[tuple[str, str]] = []  # ("start" | "end", text) of each generation
        self.device = "cpu" if device == "auto" else device
        self.token_s = token_s
        self.gate = gate
        self.gate_after = gate_after
        self.generation = Activity()  # speech_tokens generators
        self.model = Activity()  # any call that touches the model
        self.generations_started = 0
        self.tokens_generated = 0
        self.tokens_planned = 0
        self.vocode_calls: list[int] = []  # window lengths
        self.cloned: list[tuple[Path, float]] = []
        self.generate_args: list[dict[str, Any]] = []
        self.watermarked = 0
        self.renditions = 0

    def builtin_voice(self, exaggeration: float) -> FakeConditionals | None:
        if not (self.checkpoint_dir / "conds.pt").is_file():
            return None
        return FakeConditionals(180.0, exaggeration, "conds.pt")

    def clone_voice(self, wav: Path, exaggeration: float) -> FakeConditionals:
        self.cloned.append((wav, exaggeration))
        with wave.open(str(wav), "rb") as reader:  # a real WAV file, like librosa.load reads
            frames = reader.readframes(reader.getnframes())
            rate = reader.getframerate()
        samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
        crossings = np.count_nonzero(np.diff(np.signbit(samples)))
        return FakeConditionals(crossings * rate / (2 * len(samples)), exaggeration, wav.name)

    def speech_tokens(
        self,
        text: str,
        voice: FakeConditionals,
        *,
        cfg_weight: float,
        temperature: float,
        max_tokens: int,
    ) -> Iterator[int]:
        self.generate_args.append(
            {"text": text, "voice": voice, "cfg_weight": cfg_weight, "temperature": temperature}
        )
        self.generations_started += 1
        planned = min(max_tokens, math.ceil(1.5 * len(text)))
        self.tokens_planned = planned
        self.generation.enter()
        self.events.append(("start", text))
        completed = False
        try:
            for index in range(planned):
                checkpoint()
                if index == self.fail_after:
                    raise RuntimeError("injected failure in the token loop")
                if self.gate is not None and index == self.gate_after:
                    wait_interruptibly(self.gate)
                time.sleep(self.token_s)
                self.tokens_generated += 1
                yield (ord(text[index * len(text) // planned]) * 37 + index) % 6561
            completed = True
        finally:
            self.events.append(("end", text))
            self.generation.leave(completed=completed)

    def vocode(self, tokens: Sequence[int], voice: FakeConditionals) -> NDArray[np.float32]:
        assert tokens
        assert all(0 <= t < 6561 for t in tokens)
        self.model.enter()
        try:
            checkpoint()
            self.vocode_calls.append(len(tokens))
            phase0 = self.renditions * 2 * np.pi / 3
            self.renditions += 1
            pitch = np.repeat(
                [voice.pitch_hz * (1 + (t % 8) / 16) for t in tokens], CHATTERBOX_SAMPLES_PER_TOKEN
            )
            phase = phase0 + 2 * np.pi * np.cumsum(pitch) / self.sr
            audio = 0.3 * np.sin(phase)
            fade = self.sr // 50  # S3Gen: 20 ms of silence, then a 20 ms raised-cosine fade-in
            ramp = np.zeros(2 * fade)
            ramp[fade:] = (np.cos(np.linspace(np.pi, 0, fade)) + 1) / 2
            audio[: len(ramp)] *= ramp[: len(audio)]
            return audio.astype(np.float32)
        finally:
            self.model.leave(completed=True)

    def watermark(self, audio: NDArray[np.float32]) -> NDArray[np.float32]:
        self.watermarked += 1
        return audio


def write_chatterbox_checkpoint(directory: Path, *, builtin_voice: bool = True) -> Path:
    """A checkpoint directory laid out as ``ChatterboxTTS.from_local`` reads it (placeholders)."""
    from gateway.backends.chatterbox import BUILTIN_VOICE_FILE, CHECKPOINT_FILES

    directory.mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINT_FILES:
        (directory / name).write_bytes(b"stand-in")
    if builtin_voice:
        (directory / BUILTIN_VOICE_FILE).write_bytes(b"stand-in")
    return directory


def write_voice_wav(path: Path, pitch_hz: float, seconds: float = 1.0, rate: int = 24000) -> Path:
    """A reference recording: a 16-bit mono WAV of a tone at ``pitch_hz``."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.5 * 32767 * np.sin(2 * np.pi * pitch_hz * t)).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return path
