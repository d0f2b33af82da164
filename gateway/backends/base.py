"""The one backend interface every TTS engine implements.

A backend turns one segment of text into an async stream of float32 PCM chunks at its native
sample rate. Everything else (segmenting, seams, encoding, pacing, the wire protocol) is the
gateway's job, done once for every backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from gateway.core.segmenter import Boundary

__all__ = [
    "AudioChunk",
    "Backend",
    "BackendError",
    "SynthesisRequest",
    "UnknownVoiceError",
    "Voice",
    "WordTiming",
    "listed_voice",
]


class BackendError(Exception):
    """A backend could not synthesize; the message is safe to show to the client."""


class UnknownVoiceError(BackendError):
    """A voice name the backend cannot speak with; the message names the bad part."""


@dataclass(frozen=True, slots=True)
class Voice:
    """A voice a backend offers."""

    id: str
    name: str
    language: str | None = None
    gender: str | None = None


@dataclass(frozen=True, slots=True)
class SynthesisRequest:
    """One segment to speak, with the session's voice settings (already validated).

    ``deadline`` (``time.monotonic`` seconds) is when the session's listener would run out of
    audio: a backend that queues model work serves the earliest deadline first.

    ``instructions`` (a speaking style in words) is for backends whose engine takes it (OpenAI's
    newer models); every other backend ignores it.
    """

    text: str
    voice: str
    lang: str
    speed: float
    deadline: float | None = None
    instructions: str = ""


@dataclass(frozen=True, slots=True)
class WordTiming:
    """A word of the request text and when it is spoken.

    ``char_start``/``char_end`` are code-point offsets into ``SynthesisRequest.text``;
    ``sample_start``/``sample_end`` count samples at the backend's ``sample_rate`` from the
    start of the piece the word belongs to (the audio since the previous ``piece_end``).
    ``spoken`` is how the word was read where that differs from the text ("$5" -> "5 dollars").
    """

    char_start: int
    char_end: int
    sample_start: int
    sample_end: int
    spoken: str | None = None


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Audio from a backend: mono float32 in [-1, 1] at the backend's ``sample_rate``.

    ``piece_end`` is set on the last chunk of a separately synthesized stretch (a model pass)
    to the kind of text boundary it ends on; the gateway trims silence and places a pause of
    that kind there. ``None`` means more of the same stretch follows.

    ``words`` are the timings of words of this piece that the backend knows (native timing);
    they may come with any chunk of the piece, but no later than the chunk whose audio holds
    them. Backends without native timing leave it empty and the gateway estimates.
    """

    pcm: NDArray[np.float32]
    piece_end: Boundary | None = None
    words: tuple[WordTiming, ...] = ()


class Backend(Protocol):
    """A TTS engine. One instance per process serves every session.

    ``synthesize`` is an async generator that is safe to cancel: closing or cancelling it stops
    the engine's work for that request promptly.
    """

    name: str
    sample_rate: int
    languages: tuple[str, ...]
    default_voice: str
    default_lang: str
    streams_within_segment: bool  # yields audio before the whole segment is synthesized
    native_word_timing: bool  # fills AudioChunk.words

    @property
    def ready(self) -> bool:
        """True once :meth:`load` has loaded and warmed up the engine."""
        ...

    async def load(self) -> None:
        """Load the model and warm it up (idempotent). Raises BackendError on failure."""
        ...

    async def aclose(self) -> None:
        """Release the engine's resources."""
        ...

    def voices(self) -> list[Voice]:
        """The voices this backend offers."""
        ...

    def resolve_voice(self, name: str) -> str:
        """The voice ``name`` selects, as the backend will name it in requests and reports.

        Raises :class:`UnknownVoiceError` naming what is wrong. A backend that speaks only its
        listed voices returns :func:`listed_voice`; Kokoro also takes blends (``a(2)+b(1)``).
        """
        ...

    def synthesize(self, request: SynthesisRequest) -> AsyncIterator[AudioChunk]:
        """Stream the audio for one segment."""
        ...


def listed_voice(backend: Backend, name: str) -> str:
    """``name`` if it is one of ``backend.voices()``, else UnknownVoiceError listing them:
    :meth:`Backend.resolve_voice` for backends that speak only their listed voices."""
    ids = [voice.id for voice in backend.voices()]
    if name in ids:
        return name
    raise UnknownVoiceError(
        f"unknown voice {name!r} for backend {backend.name!r}; voices: " + ", ".join(ids)
    )
