"""One backend call as the speaking pipeline sees it, and the wrappers around it.

A :class:`Synthesizer` turns the text of one call into audio chunks at the stream's rate. The
innermost one, :class:`BackendSynthesizer`, makes the backend's request from the session's
voice settings and resamples (the one place audio is resampled). :class:`Guarded` fails a
backend that stays silent for ``timeout_s`` or returns something that is not audio, and reports
every call (its text, audio, waits and model time) for cost and for the timing model.
:class:`Fallback` moves a session to another backend when its backend fails, reports the
switch, and can move it back after a while.

All of them are async generators that are safe to close or cancel at any point: closing one
closes the backend's stream, which stops its work.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from gateway.audio.resample import ResampledChunks
from gateway.backends.base import Backend, SynthesisRequest
from gateway.backends.threads import ComputeClock
from gateway.core.chunks import AudioChunk
from gateway.core.errors import BackendError
from gateway.core.protocol import SPEED_RANGE, AudioFormat
from gateway.core.reading import DEFAULT_RULES, ReadingRules
from gateway.core.textnorm import Replacement
from gateway.speech.clock import Clock

__all__ = [
    "DEFAULT_CALL",
    "BackendSynthesizer",
    "CallOptions",
    "CallReport",
    "Fallback",
    "Guarded",
    "StreamSettings",
    "Switch",
    "Synthesizer",
    "checked_audio",
]

# Float PCM far beyond full scale is garbage, not loud speech.
_MAX_LEVEL: Final = 4.0


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """What ``start`` settled: the backend and the audio parameters of this session."""

    backend: Backend
    voice: str
    lang: str
    speed: float
    format: AudioFormat
    bitrate: int
    frame_ms: int
    instructions: str = ""  # a speaking style, for backends that take one
    sample_rate: int = 24000  # the stream's rate (Hz): every backend's audio is resampled to it
    rules: ReadingRules = DEFAULT_RULES  # how text is read: normalization, lexicon

    def on(self, backend: Backend) -> StreamSettings:
        """The same stream on another backend: its default voice, and the session's language
        if that backend reads it (else its default)."""
        lang = self.lang if self.lang in backend.languages else backend.default_lang
        return dataclasses.replace(self, backend=backend, voice=backend.default_voice, lang=lang)


@dataclass(frozen=True, slots=True)
class CallOptions:
    """What one call reads differently from the rest of the stream (SSML): ``rate`` scales
    the session's speed (the result kept within 0.5 to 2.0), ``readings`` are fixed readings of
    parts of the call's text (offsets into it)."""

    rate: float = 1.0
    readings: tuple[Replacement, ...] = ()


DEFAULT_CALL: Final = CallOptions()


class Synthesizer(Protocol):
    """A call's text in, chunks at the stream's rate out."""

    @property
    def stream(self) -> StreamSettings:
        """The backend that speaks now, and how."""
        ...

    def call(
        self,
        text: str,
        deadline: float | None,
        buffered_s: float | None = None,
        options: CallOptions = DEFAULT_CALL,
    ) -> AsyncGenerator[AudioChunk, None]:
        """Stream the audio of one call (``deadline``: when the listener runs dry, on the
        clock of ``time.monotonic``; ``buffered_s``: what the listener holds now, see
        :class:`~gateway.backends.base.SynthesisRequest`; ``options``: what the call reads
        differently, from SSML); raises BackendError. Closing the generator stops the
        backend's work for the call before ``aclose`` returns."""
        ...


class BackendSynthesizer:
    """The session's backend with its voice settings, resampled to ``sample_rate``."""

    def __init__(self, stream: StreamSettings, sample_rate: int) -> None:
        self._stream = stream
        self._rate = sample_rate

    @property
    def stream(self) -> StreamSettings:
        return self._stream

    async def call(
        self,
        text: str,
        deadline: float | None,
        buffered_s: float | None = None,
        options: CallOptions = DEFAULT_CALL,
    ) -> AsyncGenerator[AudioChunk, None]:
        s = self._stream
        speed = min(SPEED_RANGE[1], max(SPEED_RANGE[0], s.speed * options.rate))
        rules = dataclasses.replace(s.rules, fixed=options.readings) if options.readings else (
            s.rules)  # fmt: skip
        request = SynthesisRequest(
            text,
            s.voice,
            s.lang,
            speed,
            deadline,
            instructions=s.instructions,
            buffered_s=buffered_s,
            rules=rules,
        )
        chunks = ResampledChunks(s.backend.synthesize(request), s.backend.sample_rate, self._rate)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # closes the backend's stream: its work stops


@dataclass(frozen=True, slots=True)
class CallReport:
    """One backend call, as it went. ``seconds``: waiting for its chunks (turns on a shared
    model included); ``model_s``: the model's own time, where its pool tells (None: unknown);
    ``samples``: audio returned, at the stream's rate; ``complete``: it ran to its end."""

    backend: Backend
    text: str
    samples: int
    seconds: float
    model_s: float | None
    complete: bool
    error: BackendError | None = None

    @property
    def model_seconds(self) -> float:
        """What the call would have taken on an idle model (its waits when that is unknown)."""
        return self.seconds if self.model_s is None else self.model_s


class Guarded:
    """``inner``, guarded: a call that returns no chunk for ``timeout_s`` fails, audio that is
    not finite mono float PCM fails, and every call is reported to ``report`` when it ends."""

    def __init__(
        self,
        inner: Synthesizer,
        *,
        timeout_s: float,
        clock: Clock,
        report: Callable[[CallReport], None],
    ) -> None:
        self._inner = inner
        self._timeout = timeout_s
        self._clock = clock
        self._report = report

    @property
    def stream(self) -> StreamSettings:
        return self._inner.stream

    async def call(
        self,
        text: str,
        deadline: float | None,
        buffered_s: float | None = None,
        options: CallOptions = DEFAULT_CALL,
    ) -> AsyncGenerator[AudioChunk, None]:
        backend = self._inner.stream.backend
        seconds, samples = 0.0, 0
        complete, error = False, None
        compute = ComputeClock()  # the model's own time, apart from waits for a turn
        try:
            call = self._inner.call(text, deadline, buffered_s, options)
            async with contextlib.aclosing(call) as chunks:
                while True:
                    started = self._clock.now()
                    try:
                        with compute:
                            async with asyncio.timeout(self._timeout):
                                chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        raise BackendError(f"no audio for {self._timeout:g} s") from None
                    finally:
                        seconds += self._clock.now() - started
                    chunk = checked_audio(chunk)
                    samples += len(chunk.pcm)
                    yield chunk
            complete = True
        except BackendError as failure:
            error = failure
            raise
        finally:
            model_s = compute.seconds if compute.runs else None
            self._report(CallReport(backend, text, samples, seconds, model_s, complete, error))


@dataclass(frozen=True, slots=True)
class Switch:
    """A session moved from one backend to another (``reason``: why)."""

    previous: StreamSettings
    current: StreamSettings
    reason: str


class Fallback:
    """Speaks through ``primary`` until a call fails; then the call is repeated on the fallback
    (if the failed call returned no audio yet) and the session stays there. ``fallback`` is
    looked up at the first failure (it may load later than the session starts; None: there is
    none, the error stands). ``on_switch`` is awaited before the fallback's audio. With
    ``recover_after_s``, a call that many seconds after the switch tries the primary again.
    """

    def __init__(
        self,
        primary: Synthesizer,
        fallback: Callable[[], Synthesizer | None],
        *,
        on_switch: Callable[[Switch], Awaitable[None]],
        clock: Clock,
        recover_after_s: float = 0.0,
    ) -> None:
        self._primary = primary
        self._find_fallback = fallback
        self._fallback: Synthesizer | None = None
        self._on_switch = on_switch
        self._clock = clock
        self._recover_after_s = recover_after_s
        self._current = primary
        self._switched_at = 0.0

    @property
    def stream(self) -> StreamSettings:
        return self._current.stream

    async def call(
        self,
        text: str,
        deadline: float | None,
        buffered_s: float | None = None,
        options: CallOptions = DEFAULT_CALL,
    ) -> AsyncGenerator[AudioChunk, None]:
        await self._maybe_recover()
        speaking = self._current
        delivered = False
        try:
            call = speaking.call(text, deadline, buffered_s, options)
            async with contextlib.aclosing(call) as chunks:
                async for chunk in chunks:
                    delivered = delivered or len(chunk.pcm) > 0
                    yield chunk
            return
        except BackendError as error:
            if speaking is not self._primary or not await self._switch_away(error):
                raise
            if delivered:  # part of the call was heard: the rest of it is lost
                raise
        call = self._current.call(text, deadline, buffered_s, options)
        async with contextlib.aclosing(call) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _switch_away(self, error: BackendError) -> bool:
        """Move to the fallback; False if there is none."""
        if self._fallback is None:
            self._fallback = self._find_fallback()
        fallback = self._fallback
        if fallback is None:
            return False
        self._current, self._switched_at = fallback, self._clock.now()
        await self._on_switch(Switch(self._primary.stream, fallback.stream, str(error)))
        return True

    async def _maybe_recover(self) -> None:
        if self._current is self._primary or self._recover_after_s <= 0:
            return
        waited = self._clock.now() - self._switched_at
        if waited < self._recover_after_s:
            return
        previous, self._current = self._current.stream, self._primary
        await self._on_switch(
            Switch(previous, self._primary.stream, f"trying again after {waited:.0f} s")
        )


def checked_audio(chunk: AudioChunk) -> AudioChunk:
    """The chunk as finite mono float32 in [-1, 1]; BackendError if it is not audio at all."""
    pcm = chunk.pcm
    if not isinstance(pcm, np.ndarray) or pcm.ndim != 1 or pcm.dtype.kind != "f":
        shape = getattr(pcm, "shape", None)
        raise BackendError(f"malformed audio: expected mono float samples, got {shape}")
    if not np.isfinite(pcm).all():
        raise BackendError("malformed audio: samples that are not finite numbers")
    peak = float(np.abs(pcm).max()) if len(pcm) else 0.0
    if peak > _MAX_LEVEL:
        raise BackendError(f"malformed audio: samples up to {peak:.3g}, far beyond full scale")
    if peak > 1.0 or pcm.dtype != np.float32:
        return dataclasses.replace(chunk, pcm=np.clip(pcm, -1.0, 1.0).astype(np.float32))
    return chunk
