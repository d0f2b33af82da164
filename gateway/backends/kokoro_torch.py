"""Kokoro-82M on PyTorch, from a local checkpoint directory (optional extra ``torch``).

The checkpoint directory holds what the Kokoro-82M release holds::

    config.json           model hyper-parameters and the phoneme vocabulary
    kokoro-v1_0.pth       the weights (``model_file`` names another file)
    voices/<name>.pt      one style pack per voice, e.g. voices/af_heart.pt

Nothing is downloaded: the model is built with hexgrad's ``kokoro`` package (``KModel``, given
the local config and weights so it never reaches for a model hub), and its own G2P pipeline
(misaki) is not used. Text goes through the same front end as the ONNX backend
(:mod:`gateway.backends.kokoro_phonemes`: espeak-ng phonemes, 510-phoneme model passes, the word
of every phoneme), so both backends read a text the same way. Each model pass is one piece of
audio, with word timings from the model's predicted phoneme durations.

Thread safety: one model serves every session; a forward pass does not modify the model, so up
to ``max_concurrency`` passes run at once in this backend's thread pool. A cancelled request
stops its pass at the next layer (:mod:`gateway.backends.workers`), not at the end of the pass.

The model is reached through :class:`KokoroModel`, a seam: :class:`TorchKokoroModel` is the
real one, and tests pass a stand-in ``model_factory`` where no weights can be installed.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest, Voice
from gateway.backends.kokoro_phonemes import KokoroPhonemizer, ModelPass, pass_word_timings
from gateway.backends.kokoro_voices import KokoroVoices
from gateway.backends.settings import KokoroTorchSettings
from gateway.backends.threads import ModelPool
from gateway.backends.workers import Interrupted, install_interrupt_hooks, interruptible

__all__ = [
    "Checkpoint",
    "KokoroModel",
    "KokoroTorchBackend",
    "TorchKokoroModel",
    "find_checkpoint",
    "require_module",
    "resolve_device",
]

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 24000
LANGUAGES: Final = ("en-us", "en-gb", "es", "fr-fr", "hi", "it", "pt-br")
CONFIG_FILE: Final = "config.json"
VOICES_DIR: Final = "voices"
STYLE_DIM: Final = 256
_REPO_ID: Final = "hexgrad/Kokoro-82M"  # only names the release; nothing is fetched
_WARMUP_TEXT: Final = "Warming up the voice."
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The files of a Kokoro checkpoint directory."""

    directory: Path
    config: Path
    weights: Path
    voices: Mapping[str, Path]


def find_checkpoint(settings: KokoroTorchSettings) -> Checkpoint:
    """Check the configured directory's layout; a missing piece is a BackendError naming it."""
    layout = (
        f"put {CONFIG_FILE}, {settings.model_file} and {VOICES_DIR}/*.pt there "
        "(the files of the Kokoro-82M release)"
    )
    if not settings.checkpoint_dir:
        raise BackendError(
            "kokoro_torch: no checkpoint directory configured; set backends.<name>."
            f"checkpoint_dir to a directory and {layout}"
        )
    directory = Path(settings.checkpoint_dir).expanduser()
    if not directory.is_dir():
        raise BackendError(
            f"kokoro_torch: checkpoint directory {directory} does not exist; {layout}"
        )
    config = directory / CONFIG_FILE
    weights = directory / settings.model_file
    for path in (config, weights):
        if not path.is_file():
            raise BackendError(
                f"kokoro_torch: checkpoint directory {directory} has no {path.name}; {layout}"
            )
    voices = {path.stem: path for path in sorted((directory / VOICES_DIR).glob("*.pt"))}
    if not voices:
        raise BackendError(
            f"kokoro_torch: checkpoint directory {directory} has no voices "
            f"({directory / VOICES_DIR}/*.pt); {layout}"
        )
    return Checkpoint(directory, config, weights, voices)


class KokoroModel(Protocol):
    """What the backend needs of a Kokoro model (numpy in and out, any device inside).

    ``forward_with_tokens`` mirrors ``kokoro.KModel.forward_with_tokens``: ``input_ids`` is
    ``(1, n + 2)`` int64 with a 0 pad at both ends, ``ref_s`` the ``(1, 256)`` style row of the
    voice for ``n`` phonemes; it returns the audio (float32, 24 kHz, 600 samples per duration
    frame) and the predicted duration of each of the ``n + 2`` inputs, in frames. It may be
    called from several threads at once and should call
    :func:`gateway.backends.workers.checkpoint` between layers so a cancel stops it.
    """

    vocab: Mapping[str, int]
    device: str

    def load_voice(self, path: Path) -> NDArray[np.float32]:
        """A voice pack: ``(rows, 1, 256)`` or ``(rows, 256)``; row ``n - 1`` is for n phonemes."""
        ...

    def forward_with_tokens(
        self, input_ids: NDArray[np.int64], ref_s: NDArray[np.float32], speed: float
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """One model pass."""
        ...


ModelFactory = Callable[[Checkpoint, str], KokoroModel]


def require_module(name: str, backend: str, extra: str) -> ModuleType:
    """Import an optional dependency, or raise a BackendError that says how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = exc.name or name
        raise BackendError(
            f"{backend}: the Python package {missing!r} is not installed; install the optional "
            f"extra with `pip install 'tts-gateway[{extra}]'`"
        ) from None


def resolve_device(torch: Any, device: str, backend: str) -> str:
    """``auto`` -> ``cuda`` when PyTorch sees a GPU, else ``cpu``; ``cuda`` must be usable."""
    has_cuda = bool(torch.cuda.is_available())
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device.startswith("cuda") and not has_cuda:
        raise BackendError(
            f"{backend}: device {device!r} is configured but PyTorch {torch.__version__} sees no "
            'CUDA device; set device = "cpu" or "auto", or install a CUDA build of torch'
        )
    return device


class TorchKokoroModel:
    """hexgrad's ``KModel`` built from a local checkpoint, with numpy at its edges."""

    def __init__(self, checkpoint: Checkpoint, device: str) -> None:
        torch = require_module("torch", "kokoro_torch", "torch")
        kokoro_model = require_module("kokoro.model", "kokoro_torch", "torch")
        self._torch = torch
        self.device = resolve_device(torch, device, "kokoro_torch")
        try:
            config = json.loads(checkpoint.config.read_text(encoding="utf-8"))
            self.vocab: Mapping[str, int] = dict(config["vocab"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"kokoro_torch: {checkpoint.config} is not a Kokoro config.json: {exc!r}"
            ) from exc
        try:
            # A config dict and a weights path: KModel reads both locally, no hub download.
            model = kokoro_model.KModel(
                repo_id=_REPO_ID, config=config, model=str(checkpoint.weights)
            )
            self._model = model.to(self.device).eval()
        except Exception as exc:
            raise BackendError(
                f"kokoro_torch: cannot load {checkpoint.weights} with {checkpoint.config}: {exc}"
            ) from exc
        self._hooks = install_interrupt_hooks(self._model)
        log.info("kokoro_torch: loaded %s on %s", checkpoint.weights, self.device)

    def load_voice(self, path: Path) -> NDArray[np.float32]:
        pack = self._torch.load(str(path), map_location="cpu", weights_only=True)
        return np.asarray(pack.float().numpy(), dtype=np.float32)

    def forward_with_tokens(
        self, input_ids: NDArray[np.int64], ref_s: NDArray[np.float32], speed: float
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        torch = self._torch
        with torch.inference_mode():
            audio, durations = self._model.forward_with_tokens(
                torch.from_numpy(input_ids).to(self.device),
                torch.from_numpy(ref_s).to(self.device),
                speed,
            )
        return (
            np.asarray(audio.float().cpu().numpy(), dtype=np.float32).reshape(-1),
            np.asarray(durations.cpu().numpy(), dtype=np.int64).reshape(-1),
        )


class KokoroTorchBackend:
    """Kokoro-82M on PyTorch. Each model pass (up to 510 phonemes) is one piece of audio."""

    sample_rate: int = SAMPLE_RATE
    languages: tuple[str, ...] = LANGUAGES
    streams_within_segment = False  # one model pass per segment (long ones: a pass per batch)
    native_word_timing = True

    def __init__(
        self,
        name: str,
        settings: KokoroTorchSettings,
        *,
        model_factory: ModelFactory = TorchKokoroModel,
    ) -> None:
        """``model_factory(checkpoint, device)`` builds the model: the seam for stand-ins."""
        self.name = name
        self.default_voice = settings.default_voice
        self.default_lang = settings.default_lang
        if settings.default_lang not in LANGUAGES:
            raise BackendError(
                f"language {settings.default_lang!r} is not supported by {name!r}; use one of "
                + ", ".join(LANGUAGES)
            )
        self._settings = settings
        self._model_factory = model_factory
        self._models = ModelPool(
            f"kokoro-torch-{name}", settings.max_concurrency, settings.scheduling
        )
        self._load_lock = asyncio.Lock()
        self._model: KokoroModel | None = None
        self._phonemizer: KokoroPhonemizer | None = None
        self._voices = KokoroVoices(name, {})
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def jobs_running(self) -> int:
        """Work in this backend's threads right now."""
        return self._models.jobs_running

    @property
    def terminated_runs(self) -> int:
        """Model passes stopped early by a cancellation."""
        return self._models.terminated_runs

    @property
    def device(self) -> str | None:
        """The device the model runs on, once loaded."""
        return self._model.device if self._model is not None else None

    async def load(self) -> None:
        async with self._load_lock:
            if self._ready:
                return
            await self._models.run_unscheduled(self._load_blocking)
            try:
                self._voices.resolve(self.default_voice)
            except BackendError as error:
                raise BackendError(
                    f"kokoro_torch: default_voice {self.default_voice!r} is not in "
                    f"{self._settings.checkpoint_dir}/{VOICES_DIR}: {error}"
                ) from None
            if self._settings.warmup:
                request = SynthesisRequest(_WARMUP_TEXT, self.default_voice, self.default_lang, 1.0)
                async for _ in self.synthesize(request):
                    pass
            self._ready = True

    def _load_blocking(self) -> None:
        checkpoint = find_checkpoint(self._settings)
        model = self._model_factory(checkpoint, self._settings.device)
        voices = {name: self._voice(model, path) for name, path in checkpoint.voices.items()}
        self._phonemizer = KokoroPhonemizer(dict(model.vocab))
        self._voices = KokoroVoices(self.name, voices)
        self._model = model

    @staticmethod
    def _voice(model: KokoroModel, path: Path) -> NDArray[np.float32]:
        try:
            pack = np.asarray(model.load_voice(path), dtype=np.float32)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"kokoro_torch: cannot read the voice {path}: {exc}") from exc
        if pack.ndim not in (2, 3) or pack.shape[-1] != STYLE_DIM or pack.size // STYLE_DIM < 1:
            raise BackendError(
                f"kokoro_torch: the voice {path} has shape {pack.shape}; a Kokoro voice pack "
                f"is (rows, 1, {STYLE_DIM})"
            )
        return pack.reshape(-1, STYLE_DIM)

    async def aclose(self) -> None:
        self._models.shutdown()
        self._ready = False

    def voices(self) -> list[Voice]:
        return [
            Voice(id=name, name=name, language=_voice_language(name), gender=_voice_gender(name))
            for name in self._voices.names()
        ]

    def resolve_voice(self, name: str) -> str:
        """A voice of the checkpoint, or a blend of them (``af_heart(2)+bm_lewis(1)``)."""
        return self._voices.resolve(name)

    async def synthesize(self, request: SynthesisRequest) -> AsyncIterator[AudioChunk]:
        phonemizer = self._phonemizer
        if self._model is None or phonemizer is None:
            raise BackendError(f"backend {self.name!r} is not loaded")
        pack = self._voices.pack(request.voice)
        deadline = request.deadline
        passes = await self._run(lambda: phonemizer.passes(request.text, request.lang), deadline)
        for model_pass in passes:
            if not model_pass.tokens:
                continue
            audio, durations = await self._run(
                functools.partial(self._infer, model_pass, pack, request.speed), deadline
            )
            words = pass_word_timings(model_pass, durations, audio)
            yield AudioChunk(audio, piece_end=model_pass.boundary, words=words)

    def _infer(
        self, model_pass: ModelPass, pack: NDArray[np.float32], speed: float
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        assert self._model is not None
        tokens = model_pass.tokens
        input_ids = np.array([[0, *tokens, 0]], dtype=np.int64)
        ref_s = pack[min(len(tokens), len(pack)) - 1].reshape(1, STYLE_DIM)
        audio, durations = self._model.forward_with_tokens(input_ids, ref_s, speed)
        if len(durations) != len(tokens) + 2:
            raise BackendError(
                f"kokoro_torch: the model gave {len(durations)} durations for "
                f"{len(tokens) + 2} inputs"
            )
        return audio, durations

    async def _run(self, work: Callable[[], T], deadline: float | None) -> T:
        """Run blocking work in this backend's model pool, earliest deadline first.

        On cancellation the work is told to stop (at its next checkpoint: the next model layer)
        and the pool waits for its thread, so the slot is only free again once it has stopped.
        """
        stop = threading.Event()

        def interruptibly() -> T:
            with interruptible(stop):
                return work()

        try:
            return await self._models.run(interruptibly, deadline=deadline, stop=stop.set)
        except (BackendError, Interrupted):
            raise
        except Exception as exc:
            raise BackendError(f"kokoro_torch: synthesis failed: {exc}") from exc


_LANGUAGE_OF_PREFIX: Final = {
    "a": "en-us",
    "b": "en-gb",
    "e": "es",
    "f": "fr-fr",
    "h": "hi",
    "i": "it",
    "j": "ja",
    "p": "pt-br",
    "z": "zh",
}


def _voice_language(name: str) -> str | None:
    return _LANGUAGE_OF_PREFIX.get(name[:1])


def _voice_gender(name: str) -> str | None:
    return {"f": "female", "m": "male"}.get(name[1:2])
