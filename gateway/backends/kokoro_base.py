"""What the two Kokoro-82M backends (ONNX Runtime and PyTorch) share: the language check, the
voices, and the synthesis loop. Text is phonemized in the text thread (espeak-ng, beside the
model); each model pass (up to 510 phonemes) runs in the model pool and is one piece of audio,
with word timings from the phoneme durations the model predicts.

A subclass loads its model (:meth:`LocalBackend._load`, setting ``_phonemizer`` and
``_voices``) and runs one pass (:meth:`KokoroBackend._run_pass`).
"""

from __future__ import annotations

import abc
import contextlib
import functools
import time
from collections.abc import AsyncGenerator
from typing import Final

import numpy as np
from numpy.typing import NDArray

from gateway.backends.base import SynthesisRequest, Voice
from gateway.backends.kokoro_phonemes import KokoroPhonemizer, ModelPass, pass_word_timings
from gateway.backends.kokoro_voices import LANGUAGES, KokoroVoices
from gateway.backends.kokoro_windows import ListenerClock, heard_s
from gateway.backends.local import LocalBackend, LocalSettings
from gateway.core.chunks import AudioChunk
from gateway.core.errors import BackendError
from gateway.core.scheduling import Policy

__all__ = ["SAMPLE_RATE", "KokoroBackend", "Pack", "PassAudio"]

SAMPLE_RATE: Final = 24000
Pack = NDArray[np.float32]  # a voice's style rows
# A pass's audio (24 kHz) and, where the model reports them, each input's duration in frames.
PassAudio = tuple[NDArray[np.float32], NDArray[np.int64] | None]


class KokoroBackend(LocalBackend):
    """Kokoro-82M: a pass per up to 510 phonemes, each a piece of audio."""

    sample_rate: int = SAMPLE_RATE
    languages: tuple[str, ...] = LANGUAGES
    streams_within_segment = False  # one model pass per segment (long ones: a pass per batch)

    @property
    def _pass_per_sentence(self) -> bool:
        """Whether each sentence is a model pass of its own (else as much text as fits)."""
        return False

    def __init__(
        self,
        name: str,
        settings: LocalSettings,
        *,
        lanes: int,
        policy: Policy,
        widen_alone: bool = False,
    ) -> None:
        if settings.default_lang not in LANGUAGES:
            raise BackendError(
                f"language {settings.default_lang!r} is not supported by {name!r}; use one of "
                + ", ".join(LANGUAGES)
            )
        super().__init__(
            name, settings, lanes=lanes, policy=policy, widen_alone=widen_alone, text_thread=True
        )
        self._phonemizer: KokoroPhonemizer | None = None
        self._voices = KokoroVoices(name, {})

    def voices(self) -> list[Voice]:
        return self._voices.listed()

    def resolve_voice(self, name: str) -> str:
        """A voice of the backend, or a blend of them (``af_heart(2)+bm_lewis(1)``)."""
        return self._voices.resolve(name)

    def _check_default_voice(self, where: str) -> None:
        """After loading: the default voice (or blend) must be one of the loaded voices."""
        try:
            self._voices.resolve(self.default_voice)
        except BackendError as error:
            raise BackendError(
                f"{self.kind}: default_voice {self.default_voice!r} is not in {where}: {error}"
            ) from None

    async def _synthesize(self, request: SynthesisRequest) -> AsyncGenerator[AudioChunk, None]:
        phonemizer = self._phonemizer
        if phonemizer is None:
            raise BackendError(f"backend {self.name!r} is not loaded")
        pack = self._voices.pack(request.voice)
        passes = await self._in_text_thread(
            functools.partial(
                phonemizer.passes,
                request.text,
                request.lang,
                align=self.native_word_timing,
                rules=request.rules,
                per_sentence=self._pass_per_sentence,
            )
        )
        listener = ListenerClock(time.monotonic(), request.deadline, request.buffered_s)
        for model_pass in passes:
            if model_pass.tokens:
                chunks = self._pass_chunks(model_pass, pack, request, listener)
                async with contextlib.aclosing(chunks):
                    async for chunk in chunks:
                        listener.sent(heard_s(chunk, first=listener.first_at is None),
                                      time.monotonic())  # fmt: skip
                        yield chunk

    async def _pass_chunks(
        self, model_pass: ModelPass, pack: Pack, request: SynthesisRequest, listener: ListenerClock
    ) -> AsyncGenerator[AudioChunk, None]:
        """The audio of one model pass, its last chunk ending the piece (one chunk here;
        a backend that decodes in windows yields several, sized by the ``listener``)."""
        audio, durations = await self._run_pass(model_pass, pack, request.speed, request.deadline)
        words = pass_word_timings(model_pass, durations, audio) if durations is not None else ()
        yield AudioChunk(audio, piece_end=model_pass.boundary, words=words)

    @abc.abstractmethod
    async def _run_pass(
        self, model_pass: ModelPass, pack: Pack, speed: float, deadline: float | None
    ) -> PassAudio:
        """One model pass in the model pool: the audio (24 kHz) and, where the model reports
        them, the duration of each of the pass's ``len(tokens) + 2`` inputs in frames."""

    @staticmethod
    def _style(pack: NDArray[np.float32], tokens: list[int]) -> NDArray[np.float32]:
        """The voice's style row for a pass of ``len(tokens)`` phonemes, shape (1, 256)."""
        row: NDArray[np.float32] = pack[min(len(tokens), len(pack)) - 1].reshape(1, -1)
        return row
