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

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from gateway.backends.kokoro_base import KokoroBackend, Pack, PassAudio
from gateway.backends.kokoro_phonemes import KokoroPhonemizer, ModelPass
from gateway.backends.kokoro_voices import KokoroVoices
from gateway.backends.settings import KokoroTorchSettings
from gateway.backends.workers import (
    Interrupted,
    install_interrupt_hooks,
    interruptible,
    require_module,
    resolve_device,
)
from gateway.core.errors import BackendError

__all__ = [
    "Checkpoint",
    "KokoroModel",
    "KokoroTorchBackend",
    "TorchKokoroModel",
    "find_checkpoint",
]

log = logging.getLogger(__name__)

CONFIG_FILE: Final = "config.json"
VOICES_DIR: Final = "voices"
STYLE_DIM: Final = 256
_REPO_ID: Final = "hexgrad/Kokoro-82M"  # only names the release; nothing is fetched


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


class KokoroTorchBackend(KokoroBackend):
    """Kokoro-82M on PyTorch. Each model pass (up to 510 phonemes) is one piece of audio."""

    kind = "kokoro_torch"
    native_word_timing = True

    def __init__(
        self,
        name: str,
        settings: KokoroTorchSettings,
        *,
        model_factory: ModelFactory = TorchKokoroModel,
    ) -> None:
        """``model_factory(checkpoint, device)`` builds the model: the seam for stand-ins."""
        super().__init__(name, settings, lanes=settings.max_concurrency, policy=settings.scheduling)
        self._settings = settings
        self._model_factory = model_factory
        self._model: KokoroModel | None = None

    @property
    def device(self) -> str | None:
        """The device the model runs on, once loaded."""
        return self._model.device if self._model is not None else None

    async def _load(self) -> None:
        await self._models.run_unscheduled(self._load_blocking)
        self._check_default_voice(f"{self._settings.checkpoint_dir}/{VOICES_DIR}")

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

    async def _run_pass(
        self, model_pass: ModelPass, pack: Pack, speed: float, deadline: float | None
    ) -> PassAudio:
        """One pass in the model pool, earliest deadline first. On cancellation the pass is
        told to stop (at its next checkpoint: the next model layer) and the pool waits for its
        thread, so the slot is only free again once it has stopped."""
        stop = threading.Event()
        style = self._style(pack, model_pass.tokens)

        def interruptibly() -> tuple[NDArray[np.float32], NDArray[np.int64]]:
            with interruptible(stop):
                return self._infer(model_pass.tokens, style, speed)

        try:
            return await self._models.run(interruptibly, deadline=deadline, stop=stop.set)
        except (BackendError, Interrupted):
            raise
        except Exception as exc:
            raise BackendError(f"kokoro_torch: synthesis failed: {exc}") from exc

    def _infer(
        self, tokens: list[int], style: NDArray[np.float32], speed: float
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        assert self._model is not None
        input_ids = np.array([[0, *tokens, 0]], dtype=np.int64)
        audio, durations = self._model.forward_with_tokens(input_ids, style, speed)
        if len(durations) != len(tokens) + 2:
            raise BackendError(
                f"kokoro_torch: the model gave {len(durations)} durations for "
                f"{len(tokens) + 2} inputs"
            )
        self.counters.samples += len(audio)
        return audio, durations
