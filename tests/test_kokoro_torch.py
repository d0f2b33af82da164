"""The Kokoro PyTorch backend, through a stand-in model.

No package ships Kokoro .pth weights, so these tests inject ``tests.fakes_torch.FakeKModel``
through the backend's ``model_factory`` seam: a stand-in with KModel's inputs, outputs, dtypes
and sample rate, blocking passes with a stop check per layer. Everything else is the real
backend: checkpoint checks, voice loading, the shared espeak-ng front end, model passes in the
thread pool, cancellation, word timings. ``tests/test_kokoro_torch_real.py`` runs the real
PyTorch path where torch and kokoro are installed.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gateway.backends import create_backend
from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest
from gateway.backends.kokoro_torch import Checkpoint, KokoroTorchBackend
from gateway.backends.settings import KokoroTorchSettings
from gateway.backends.workers import resolve_device
from gateway.config import load_config
from gateway.core.segmenter import Boundary
from tests.conftest import REPO, timeout
from tests.fakes_torch import (
    KOKORO_SAMPLES_PER_FRAME,
    FakeKModel,
    until,
    write_kokoro_checkpoint,
)


class Models:
    """A model factory that builds stand-ins and remembers them."""

    def __init__(self, **options: object) -> None:
        self.options = options
        self.built: list[FakeKModel] = []

    def __call__(self, checkpoint: Checkpoint, device: str) -> FakeKModel:
        model = FakeKModel(checkpoint, device, **self.options)  # type: ignore[arg-type]
        self.built.append(model)
        return model

    @property
    def model(self) -> FakeKModel:
        return self.built[-1]


def settings_for(directory: Path, **overrides: object) -> KokoroTorchSettings:
    return KokoroTorchSettings(checkpoint_dir=str(directory), **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def loaded(tmp_path: Path) -> AsyncIterator[tuple[KokoroTorchBackend, Models]]:
    models = Models()
    directory = write_kokoro_checkpoint(tmp_path / "kokoro", voices=("af_heart", "bm_lewis"))
    backend = KokoroTorchBackend("kt", settings_for(directory), model_factory=models)
    await backend.load()
    yield backend, models
    await backend.aclose()


async def speak(backend: KokoroTorchBackend, text: str, **fields: object) -> list[AudioChunk]:
    request = SynthesisRequest(
        text,
        str(fields.get("voice", "af_heart")),
        str(fields.get("lang", "en-us")),
        float(fields.get("speed", 1.0)),  # type: ignore[arg-type]
    )
    async with asyncio.timeout(timeout(60)):
        return [chunk async for chunk in backend.synthesize(request)]


async def test_a_pass_gives_24khz_audio_with_the_model_durations(
    loaded: tuple[KokoroTorchBackend, Models],
) -> None:
    backend, models = loaded
    assert backend.ready
    assert backend.sample_rate == 24000
    assert backend.device == "cpu"
    calls_before = len(models.model.calls)
    chunks = await speak(backend, "Hello world, this is a test.")
    assert len(chunks) == 1
    chunk = chunks[0]
    assert chunk.pcm.dtype == np.float32
    assert chunk.pcm.ndim == 1
    assert chunk.piece_end is Boundary.SENTENCE
    input_ids, ref_s, speed = models.model.calls[calls_before]
    durations = models.model.durations(input_ids, speed)
    assert len(chunk.pcm) == KOKORO_SAMPLES_PER_FRAME * int(durations.sum())
    # The style row is the voice pack's row for this many phonemes.
    with (Path(backend._settings.checkpoint_dir) / "voices/af_heart.pt").open("rb") as stream:
        pack = np.load(stream)
    assert np.array_equal(ref_s[0], pack[input_ids.shape[1] - 3, 0])
    # Inference ran in the backend's own threads, never on the event loop.
    assert models.model.activity.threads == {
        name for name in models.model.activity.threads if name.startswith("kokoro-torch-kt")
    }


async def test_words_point_at_the_text_and_at_their_sound(
    loaded: tuple[KokoroTorchBackend, Models],
) -> None:
    """The stand-in sounds letters and is silent on spaces and punctuation, so word spans
    that are off by even one phoneme would start in silence or cover a pause."""
    backend, _ = loaded
    text = "Hello world, this is the test. I owe $5 to Bob!"
    chunks = await speak(backend, text)
    words = [word for chunk in chunks for word in chunk.words]
    assert [text[w.char_start : w.char_end] for w in words] == [
        *re.findall(r"[A-Za-z]+", text.split("$")[0]),
        "$5",
        "to",
        "Bob",
    ]
    assert words[-3].spoken == "five dollars"
    pcm = np.concatenate([chunk.pcm for chunk in chunks])
    for word, following in zip(words, [*words[1:], None], strict=True):
        assert 0 <= word.sample_start < word.sample_end <= len(pcm)
        onset = pcm[word.sample_start : word.sample_start + KOKORO_SAMPLES_PER_FRAME]
        assert np.sqrt(np.mean(onset**2)) > 0.1, text[word.char_start : word.char_end]
        if following is not None:
            assert word.sample_end <= following.sample_start
            assert not np.any(pcm[word.sample_end : following.sample_start]), "pause is silent"


async def test_the_article_a_gets_its_own_sound(loaded: tuple[KokoroTorchBackend, Models]) -> None:
    backend, _ = loaded
    chunks = await speak(backend, "This is a test.")
    article = next(w for w in chunks[0].words if (w.char_start, w.char_end) == (8, 9))
    assert article.sample_start < article.sample_end


async def test_speed_reaches_the_model(loaded: tuple[KokoroTorchBackend, Models]) -> None:
    backend, models = loaded
    slow = await speak(backend, "A short sentence to time.", speed=0.8)
    fast = await speak(backend, "A short sentence to time.", speed=1.6)
    assert models.model.calls[-1][2] == 1.6
    assert len(slow[0].pcm) > 1.4 * len(fast[0].pcm)


async def test_long_text_is_one_piece_per_model_pass(
    loaded: tuple[KokoroTorchBackend, Models],
) -> None:
    backend, models = loaded
    text = " ".join(["This sentence is repeated to exceed the model's phoneme window."] * 12)
    before = len(models.model.calls)
    chunks = await speak(backend, text)
    assert len(chunks) >= 2
    assert len(chunks) == len(models.model.calls) - before
    assert all(chunk.piece_end is not None for chunk in chunks)
    assert all(0 < input_ids.shape[1] <= 512 for input_ids, _, _ in models.model.calls[before:])
    words = [w for chunk in chunks for w in chunk.words]
    assert len(words) == len(text.split())  # every word once, in order
    assert [w.char_start for w in words] == sorted(w.char_start for w in words)
    for chunk in chunks:
        assert chunk.words
        assert all(w.sample_end <= len(chunk.pcm) for w in chunk.words)


async def test_cancel_stops_the_running_pass(tmp_path: Path) -> None:
    gate = threading.Event()  # not set: the pass can only end by being stopped
    models = Models(hold=gate)
    directory = write_kokoro_checkpoint(tmp_path / "kokoro")
    backend = KokoroTorchBackend("kt", settings_for(directory, warmup=False), model_factory=models)
    await backend.load()
    task = asyncio.create_task(speak(backend, "A sentence that the model never finishes."))
    await until(models.model.entered.is_set, timeout(10))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    activity = models.model.activity
    assert (backend.counters.stopped, activity.interrupted, activity.active) == (1, 1, 0)
    gate.set()  # the model works again for the next request
    assert await speak(backend, "Still working.")
    await backend.aclose()


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_at_most_max_concurrency_passes_run_at_once(tmp_path: Path, concurrency: int) -> None:
    gate = threading.Event()
    models = Models(hold=gate)
    directory = write_kokoro_checkpoint(tmp_path / "kokoro")
    settings = settings_for(directory, warmup=False, max_concurrency=concurrency)
    backend = KokoroTorchBackend("kt", settings, model_factory=models)
    await backend.load()
    tasks = [asyncio.create_task(speak(backend, f"Request number {i}.")) for i in range(3)]
    await until(lambda: models.model.activity.active == concurrency, timeout(10))
    gate.set()
    async with asyncio.timeout(timeout(10)):
        results = await asyncio.gather(*tasks)
    assert all(len(chunks) == 1 for chunks in results)
    assert models.model.activity.max_active == concurrency
    assert len(models.model.activity.threads) == concurrency
    await backend.aclose()


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda d: None, "checkpoint directory {d} does not exist"),
        (lambda d: d.mkdir(), "has no config.json; put config.json, kokoro-v1_0.pth and voices"),
        (
            lambda d: (write_kokoro_checkpoint(d), (d / "kokoro-v1_0.pth").unlink()),
            "has no kokoro-v1_0.pth; put config.json, kokoro-v1_0.pth and voices/\\*.pt there",
        ),
        (
            lambda d: (write_kokoro_checkpoint(d), (d / "voices/af_heart.pt").unlink()),
            "has no voices \\({d}/voices/\\*.pt\\)",
        ),
    ],
)
async def test_a_missing_checkpoint_names_the_files_and_where(
    tmp_path: Path, prepare: Callable[[Path], object], message: str
) -> None:
    directory = tmp_path / "ckpt"
    prepare(directory)
    backend = KokoroTorchBackend("kt", settings_for(directory), model_factory=Models())
    with pytest.raises(BackendError, match=message.format(d=re.escape(str(directory)))):
        await backend.load()
    await backend.aclose()


async def test_no_checkpoint_configured_says_what_to_set() -> None:
    backend = KokoroTorchBackend("kt", KokoroTorchSettings(), model_factory=Models())
    with pytest.raises(BackendError, match="no checkpoint directory configured; set backends"):
        await backend.load()
    await backend.aclose()


async def test_a_missing_torch_extra_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the real model factory: torch is not importable (absent, or hidden here)."""
    monkeypatch.setitem(sys.modules, "torch", None)
    directory = write_kokoro_checkpoint(tmp_path / "kokoro")
    backend = KokoroTorchBackend("kt", settings_for(directory))
    with pytest.raises(BackendError, match=r"'torch' is not installed.*tts-gateway\[torch\]"):
        await backend.load()
    await backend.aclose()


async def test_voice_problems_are_clear(tmp_path: Path) -> None:
    directory = write_kokoro_checkpoint(tmp_path / "kokoro", voices=("af_heart",))
    backend = KokoroTorchBackend(
        "kt", settings_for(directory, default_voice="zz_nobody"), model_factory=Models()
    )
    with pytest.raises(BackendError, match=r"default_voice 'zz_nobody' is not in .*af_heart"):
        await backend.load()
    await backend.aclose()
    with (directory / "voices/af_heart.pt").open("wb") as stream:
        np.save(stream, np.zeros((510, 128), np.float32))
    backend = KokoroTorchBackend("kt", settings_for(directory), model_factory=Models())
    with pytest.raises(BackendError, match=r"shape \(510, 128\); a Kokoro voice pack"):
        await backend.load()
    await backend.aclose()


async def test_voices_list_language_and_gender(loaded: tuple[KokoroTorchBackend, Models]) -> None:
    backend, _ = loaded
    assert [(v.id, v.language, v.gender) for v in backend.voices()] == [
        ("af_heart", "en-us", "female"),
        ("bm_lewis", "en-gb", "male"),
    ]


def test_device_selection() -> None:
    no_gpu = SimpleNamespace(cuda=SimpleNamespace(is_available=lambda: False), __version__="x")
    gpu = SimpleNamespace(cuda=SimpleNamespace(is_available=lambda: True), __version__="x")
    assert resolve_device(no_gpu, "auto", "kt") == "cpu"
    assert resolve_device(gpu, "auto", "kt") == "cuda"
    assert resolve_device(gpu, "cuda:1", "kt") == "cuda:1"
    assert resolve_device(no_gpu, "cpu", "kt") == "cpu"
    with pytest.raises(BackendError, match="'cuda' is configured but PyTorch x sees no CUDA"):
        resolve_device(no_gpu, "cuda", "kt")
    with pytest.raises(ValueError, match="device: must be auto, cpu, cuda"):
        KokoroTorchSettings(device="tpu")


def test_the_registry_builds_it_and_config_toml_documents_it() -> None:
    assert isinstance(create_backend("kt", KokoroTorchSettings()), KokoroTorchBackend)
    example = commented_table("kokoro_torch")
    assert example == {
        name: getattr(KokoroTorchSettings(), name)
        for name in KokoroTorchSettings.__dataclass_fields__
    }


def commented_table(name: str) -> dict[str, object]:
    """The commented-out example ``[backends.<name>]`` table of config.toml, parsed."""
    lines, inside = [], False
    for line in (REPO / "config.toml").read_text().splitlines():
        if line.startswith(f"# [backends.{name}]"):
            inside = True
        elif inside and (not line.startswith("# ") or line.startswith("# [")):
            break
        if inside:
            lines.append(line[2:])
    table = tomllib.loads("\n".join(lines))["backends"][name]
    assert isinstance(table, dict)
    path = REPO / "config.toml"
    loaded = load_config(path, environ={f"TTSGW_BACKENDS__{name.upper()}__KIND": name})
    assert loaded.backends[name].kind == name  # the kind is registered with the config
    return table
