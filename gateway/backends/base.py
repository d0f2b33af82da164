"""The one backend interface every TTS engine implements.

A backend turns one segment of text into an async stream of float32 PCM chunks at its native
sample rate. Everything else (segmenting, seams, encoding, pacing, the wire protocol) is the
gateway's job, done once for every backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Protocol

from gateway.core.chunks import AudioChunk, WordTiming
from gateway.core.errors import BackendError, UnknownVoiceError
from gateway.core.reading import DEFAULT_RULES, ReadingRules

__all__ = [
    "WARMUP_TEXT",
    "AudioChunk",
    "Backend",
    "BackendError",
    "EngineCounters",
    "SynthesisRequest",
    "UnknownVoiceError",
    "Voice",
    "WordTiming",
    "listed_voice",
]


# What every backend says once before it reports ready, when its settings ask for a warm-up.
WARMUP_TEXT: Final = "Warming up the voice."


@dataclass(slots=True)
class EngineCounters:
    """What an engine is doing, for metrics and tests. Engine threads update them (a lost
    update under a race only makes a reading a little stale)."""

    running: int = 0  # calls whose engine work (threads, provider requests) runs right now
    samples: int = 0  # audio made by the engine or received from its provider, all calls
    stopped: int = 0  # engine work stopped early by a cancellation
    queued: int = 0  # model work waiting for a slot of the engine's pool right now
    waits: int = 0  # model work granted a slot, all calls...
    waited_s: float = 0.0  # ...and the seconds it waited for it, in total


@dataclass(frozen=True, slots=True)
class Voice:
    """A voice a backend offers."""

    id: str
    name: str
    language: str | None = None
    gender: str | None = None
    #: The values of ``start.lang`` this voice reads, where that is fewer than its backend's
    #: ``languages`` (an espeak voice file serves a few language codes); empty: all of them.
    languages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SynthesisRequest:
    """One segment to speak, with the session's voice settings (already validated).

    ``deadline`` (``time.monotonic`` seconds) is when the session's listener would run out of
    audio: a backend that queues model work serves the earliest deadline first (a new turn's
    first request is due within the latency target, whatever the listener holds).
    ``buffered_s`` is the audio the listener holds unplayed when the request is made (None:
    unknown): a backend that streams within a request can tell from it when the listener will
    need each part of the request's audio.

    ``instructions`` (a speaking style in words) is for backends whose engine takes it (OpenAI's
    newer models); every other backend ignores it.

    ``rules`` say how the text is read (normalization settings, the session's lexicon, SSML
    readings): local engines read ``gateway.core.reading.read(text, lang, rules)``; remote
    providers normalize the text themselves.
    """

    text: str
    voice: str
    lang: str
    speed: float
    deadline: float | None = None
    instructions: str = ""
    buffered_s: float | None = None
    rules: ReadingRules = DEFAULT_RULES


class Backend(Protocol):
    """A TTS engine. One instance per process serves every session.

    ``synthesize`` is an async generator that is safe to cancel: closing or cancelling it stops
    the engine's work for that request promptly.
    """

    name: str
    kind: str  # the registry's kind (gateway.backends.registry); prices are looked up by it
    model: str | None  # the provider's model it bills as (None: a local engine)
    sample_rate: int
    languages: tuple[str, ...]
    default_voice: str
    default_lang: str
    streams_within_segment: bool  # yields audio before the whole segment is synthesized
    native_word_timing: bool  # fills AudioChunk.words
    max_input_chars: int | None  # the longest text one call takes (None: any length)
    counters: EngineCounters

    @property
    def lanes(self) -> int:
        """How many calls the engine runs at once when busy (its concurrency): sessions
        sharing it size their calls by it."""
        ...

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
