"""The Chatterbox backend, through a stand-in model.

No package ships Chatterbox weights (and chatterbox-tts pins a torch build that cannot be
installed here), so these tests inject ``tests.fakes_torch.FakeChatterbox`` through the
backend's ``engine_factory`` seam: a stand-in that generates speech tokens one at a time in
the worker thread, vocodes 960 samples per token at 24 kHz with a new excitation phase on every
call (as S3Gen does), and checks for a stop before every token. Everything else is the real
backend: checkpoint and voice checks, voice cloning from WAV files, chunking, context
re-vocoding and crossfades, the bounded bridge to the event loop, cancellation, one generation
at a time.
"""

from __future__ import annotations

import asyncio
import math
import re
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from gateway.backends import create_backend
from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest
from gateway.backends.chatterbox import QUEUE_CHUNKS, ChatterboxBackend
from gateway.backends.settings import ChatterboxSettings
from gateway.core.segmenter import Boundary
from tests.conftest import REPO, timeout
from tests.fakes_torch import (
    CHATTERBOX_SAMPLES_PER_TOKEN,
    FakeChatterbox,
    until,
    write_chatterbox_checkpoint,
    write_voice_wav,
)
from tests.test_kokoro_torch import commented_table

TEXT = "Streaming speech arrives in chunks, joined without a click."


class Engines:
    """An engine factory that builds stand-ins and remembers them."""

    def __init__(self, **options: object) -> None:
        self.options = options
        self.built: list[FakeChatterbox] = []

    def __call__(self, checkpoint_dir: Path, device: str) -> FakeChatterbox:
        engine = FakeChatterbox(checkpoint_dir, device, **self.options)  # type: ignore[arg-type]
        self.built.append(engine)
        return engine

    @property
    def engine(self) -> FakeChatterbox:
        return self.built[-1]


def settings_for(tmp_path: Path, **overrides: object) -> ChatterboxSettings:
    checkpoint = write_chatterbox_checkpoint(tmp_path / "chatterbox")
    write_voice_wav(tmp_path / "voices" / "low.wav", 110.0)
    write_voice_wav(tmp_path / "voices" / "high.wav", 220.0)
    values: dict[str, object] = {
        "checkpoint_dir": str(checkpoint),
        "voices_dir": str(tmp_path / "voices"),
        "warmup": False,
        **overrides,
    }
    return ChatterboxSettings(**values)  # type: ignore[arg-type]


async def loaded_backend(
    tmp_path: Path, engines: Engines, **overrides: object
) -> ChatterboxBackend:
    backend = ChatterboxBackend("cb", settings_for(tmp_path, **overrides), engine_factory=engines)
    async with asyncio.timeout(timeout(30)):
        await backend.load()
    return backend


@pytest.fixture
async def engines() -> Engines:
    return Engines()


@pytest.fixture
async def backend(tmp_path: Path, engines: Engines) -> AsyncIterator[ChatterboxBackend]:
    loaded = await loaded_backend(tmp_path, engines)
    yield loaded
    await loaded.aclose()


def request(text: str = TEXT, voice: str = "default") -> SynthesisRequest:
    return SynthesisRequest(text, voice, "en-us", 1.0)


async def speak(
    backend: ChatterboxBackend, text: str = TEXT, voice: str = "default"
) -> list[AudioChunk]:
    async with asyncio.timeout(timeout(60)):
        return [chunk async for chunk in backend.synthesize(request(text, voice))]


async def next_chunk(stream: AsyncIterator[AudioChunk]) -> AudioChunk:
    return await anext(stream)


def max_slope(engine: FakeChatterbox, voice_pitch_hz: float) -> float:
    """The largest sample-to-sample step of the stand-in's own signal (its steepest tone)."""
    return 0.3 * 2 * math.pi * voice_pitch_hz * (1 + 7 / 16) / engine.sr


async def test_chunks_cover_every_token_once_at_24khz(
    backend: ChatterboxBackend, engines: Engines
) -> None:
    chunks = await speak(backend)
    engine = engines.engine
    tokens = engine.tokens_generated
    assert tokens == math.ceil(1.5 * len(TEXT))
    # First chunk after 10 tokens, then every 25; the last one ends the utterance.
    assert len(chunks) == 1 + math.ceil((tokens - 10) / 25)
    assert all(c.pcm.dtype == np.float32 and c.pcm.ndim == 1 for c in chunks)
    assert [c.piece_end for c in chunks] == [None] * (len(chunks) - 1) + [Boundary.SENTENCE]
    assert backend.sample_rate == 24000
    # Overlaps are crossfaded, not repeated: the timeline holds each token's audio once.
    assert sum(len(c.pcm) for c in chunks) == CHATTERBOX_SAMPLES_PER_TOKEN * tokens
    # Each window is the new tokens after at most context_tokens of the ones before.
    assert engine.vocode_calls[0] == 10
    assert all(n <= 50 + 25 for n in engine.vocode_calls)
    assert engine.vocode_calls[1] == 10 + 25
    assert engine.watermarked == len(engine.vocode_calls)
    assert engine.model.threads == engine.generation.threads == {"chatterbox-cb_0"}


async def test_joins_are_continuous(backend: ChatterboxBackend, engines: Engines) -> None:
    pcm = np.concatenate([c.pcm for c in await speak(backend)])
    steps = np.abs(np.diff(pcm))
    assert steps.max() <= 1.05 * max_slope(engines.engine, 180.0)


async def test_without_crossfade_the_joins_click(tmp_path: Path) -> None:
    """The control for the test above: the same renditions cut hard do step at the joins."""
    engines = Engines()
    backend = await loaded_backend(tmp_path, engines, crossfade_ms=0.0)
    pcm = np.concatenate([c.pcm for c in await speak(backend)])
    assert np.abs(np.diff(pcm)).max() > 3 * max_slope(engines.engine, 180.0)
    await backend.aclose()


async def test_the_first_chunk_arrives_while_generation_goes_on(tmp_path: Path) -> None:
    gate = threading.Event()
    engines = Engines(gate=gate, gate_after=15)  # generation waits after 15 tokens
    backend = await loaded_backend(tmp_path, engines)
    stream = backend.synthesize(request())
    async with asyncio.timeout(timeout(30)):
        first = await anext(stream)
    engine = engines.engine
    assert len(first.pcm) > 0
    assert first.piece_end is None
    assert engine.generation.active == 1
    assert engine.tokens_generated < engine.tokens_planned
    gate.set()
    async with asyncio.timeout(timeout(30)):
        rest = [chunk async for chunk in stream]
    assert rest[-1].piece_end is Boundary.SENTENCE
    assert engine.generation.completed == 1
    await backend.aclose()


@pytest.mark.parametrize("how", ["cancel", "close"])
async def test_stopping_a_stream_stops_generation_and_ends_the_worker(
    tmp_path: Path, how: str
) -> None:
    gate = threading.Event()  # not set: generation can only end by being stopped
    engines = Engines(gate=gate, gate_after=15)
    backend = await loaded_backend(tmp_path, engines)
    stream = backend.synthesize(request())
    async with asyncio.timeout(timeout(30)):
        await anext(stream)
        if how == "close":
            await stream.aclose()
        else:
            task = asyncio.create_task(next_chunk(stream))
            await until(lambda: engines.engine.tokens_generated == 15, timeout(30))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await stream.aclose()
    engine = engines.engine
    # The worker thread has returned, the token loop was stopped mid-way, the model is idle.
    assert (backend.counters.running, backend.counters.stopped) == (0, 1)
    assert (engine.generation.active, engine.generation.interrupted) == (0, 1)
    assert engine.tokens_generated <= 15 < engine.tokens_planned
    gate.set()
    assert await speak(backend, "The next request is served.")
    await backend.aclose()


async def test_a_slow_listener_holds_the_worker_back(tmp_path: Path) -> None:
    """The bridge is bounded: unread chunks stop generation instead of piling up."""
    engines = Engines()
    backend = await loaded_backend(tmp_path, engines)
    long_text = " ".join([TEXT] * 6)  # about 550 tokens: 22 chunks
    stream = backend.synthesize(request(long_text))
    async with asyncio.timeout(timeout(30)):
        await anext(stream)
        # The worker fills the bridge and then waits for the listener.
        await until(lambda: len(engines.engine.vocode_calls) >= 1 + QUEUE_CHUNKS, timeout(30))
        await asyncio.sleep(0.05)  # let it run ahead if it could; the bound below must hold
        generated = engines.engine.tokens_generated
        assert len(engines.engine.vocode_calls) <= 2 + QUEUE_CHUNKS
        assert generated < engines.engine.tokens_planned
        await stream.aclose()
    assert backend.counters.running == 0
    await backend.aclose()


async def test_requests_take_turns_on_the_model(tmp_path: Path) -> None:
    gate = threading.Event()
    engines = Engines(gate=gate, gate_after=15)
    backend = await loaded_backend(tmp_path, engines)
    first = asyncio.create_task(speak(backend, "The first request speaks."))
    await until(lambda: engines.engine.tokens_generated == 15, timeout(30))
    second = asyncio.create_task(speak(backend, "The second one waits."))
    for _ in range(10):
        await asyncio.sleep(0)  # the second request runs up to the model lock
    assert not second.done()
    assert engines.engine.generations_started == 1
    gate.set()
    async with asyncio.timeout(timeout(30)):
        await asyncio.gather(first, second)
    engine = engines.engine
    assert engine.events == [
        ("start", "The first request speaks."),
        ("end", "The first request speaks."),
        ("start", "The second one waits."),
        ("end", "The second one waits."),
    ]
    assert engine.generation.max_active == 1
    assert engine.model.max_active == 1
    await backend.aclose()


async def test_voices_are_cloned_from_reference_wavs(
    tmp_path: Path, backend: ChatterboxBackend, engines: Engines
) -> None:
    assert [v.id for v in backend.voices()] == ["default", "high", "low"]
    engine = engines.engine
    assert sorted((path.name, ex) for path, ex in engine.cloned) == [
        ("high.wav", 0.5),
        ("low.wav", 0.5),
    ]
    rates = {}
    for voice in ("low", "high"):
        pcm = np.concatenate([c.pcm for c in await speak(backend, voice=voice)])
        rates[voice] = np.count_nonzero(np.diff(np.signbit(pcm)))
        assert engine.generate_args[-1]["voice"].source == f"{voice}.wav"
    assert rates["high"] > 1.8 * rates["low"]  # the reference's pitch reached the model


async def test_generation_settings_reach_the_model(tmp_path: Path) -> None:
    engines = Engines()
    backend = await loaded_backend(
        tmp_path, engines, exaggeration=0.9, cfg_weight=0.3, temperature=0.6, watermark=False
    )
    await speak(backend, "Settings **matter**, $5 or not.")
    args = engines.engine.generate_args[-1]
    assert (args["cfg_weight"], args["temperature"]) == (0.3, 0.6)
    assert args["voice"].exaggeration == 0.9
    assert args["text"] == "Settings matter, five dollars or not."  # Markdown and money spoken
    assert engines.engine.watermarked == 0
    await backend.aclose()


async def test_a_failure_in_generation_is_a_backend_error(tmp_path: Path) -> None:
    engines = Engines(fail_after=30)
    backend = await loaded_backend(tmp_path, engines)
    with pytest.raises(BackendError, match="synthesis failed: injected failure"):
        await speak(backend)
    assert backend.counters.running == 0
    engines.engine.fail_after = None
    assert await speak(backend)  # the model is free again
    await backend.aclose()


async def test_warmup_generates_at_load(tmp_path: Path) -> None:
    engines = Engines()
    backend = await loaded_backend(tmp_path, engines, warmup=True)
    assert backend.ready
    assert engines.engine.generation.completed == 1
    await backend.aclose()


@pytest.mark.parametrize(
    ("prepare", "overrides", "message"),
    [
        (lambda d: None, {"checkpoint_dir": ""}, "no checkpoint directory configured; set"),
        (
            lambda d: None,
            {},
            "has no ve.safetensors, t3_cfg.safetensors, s3gen.safetensors, tokenizer.json; put",
        ),
        (
            lambda d: (write_chatterbox_checkpoint(d), (d / "s3gen.safetensors").unlink()),
            {},
            r"has no s3gen.safetensors; put ve.safetensors, .* there",
        ),
        (
            lambda d: write_chatterbox_checkpoint(d, builtin_voice=False),
            {"voices_dir": ""},
            "no voice: put conds.pt in .* or <voice>.wav reference recordings",
        ),
        (
            lambda d: write_chatterbox_checkpoint(d),
            {"voices_dir": "/nonexistent/voices"},
            "voices_dir /nonexistent/voices does not exist",
        ),
        (
            lambda d: write_chatterbox_checkpoint(d),
            {"default_voice": "nobody"},
            r"default_voice 'nobody' is not available \(voices: default\)",
        ),
    ],
)
async def test_checkpoint_problems_name_the_files(
    tmp_path: Path, prepare: Callable[[Path], object], overrides: dict[str, object], message: str
) -> None:
    directory = tmp_path / "ckpt"
    prepare(directory)
    values: dict[str, object] = {"checkpoint_dir": str(directory), "warmup": False, **overrides}
    settings = ChatterboxSettings(**values)  # type: ignore[arg-type]
    backend = ChatterboxBackend("cb", settings, engine_factory=Engines())
    with pytest.raises(BackendError, match=message):
        await backend.load()
    await backend.aclose()


async def test_a_bad_reference_recording_is_named(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    (Path(settings.voices_dir) / "broken.wav").write_bytes(b"not a wav file")
    backend = ChatterboxBackend("cb", settings, engine_factory=Engines())
    with pytest.raises(BackendError, match=r"cannot use .*broken\.wav as a reference voice"):
        await backend.load()
    await backend.aclose()


async def test_a_missing_extra_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the real engine: torch or chatterbox-tts is not importable (absent, or hidden)."""
    monkeypatch.setitem(sys.modules, "chatterbox", None)
    monkeypatch.setitem(sys.modules, "chatterbox.tts", None)
    backend = ChatterboxBackend("cb", settings_for(tmp_path))
    with pytest.raises(
        BackendError, match=r"'(torch|chatterbox|chatterbox\.tts)' is not installed.*\[chatterbox\]"
    ):
        await backend.load()
    await backend.aclose()


def test_settings_are_validated() -> None:
    for field, value, words in [
        ("max_concurrency", 2, "one request at a time"),
        ("crossfade_ms", 50.0, "crossfade_ms: must be between 0 and 40"),
        ("cfg_weight", 1.5, "cfg_weight: must be between 0 and 1"),
        ("chunk_tokens", 1, "chunk_tokens: must be at least 2"),
        ("device", "gpu", "device: must be auto, cpu, cuda"),
    ]:
        with pytest.raises(ValueError, match=re.escape(words)):
            ChatterboxSettings(**{field: value})  # type: ignore[arg-type]


def test_the_registry_builds_it_and_config_toml_documents_it() -> None:
    assert isinstance(create_backend("cb", ChatterboxSettings()), ChatterboxBackend)
    assert commented_table("chatterbox") == {
        name: getattr(ChatterboxSettings(), name)
        for name in ChatterboxSettings.__dataclass_fields__
    }
    assert (REPO / "config.toml").is_file()
