"""The base of the remote backends (OpenAI, AllTalk, ElevenLabs): the HTTP client, the
concurrency limit, the retry loop (:mod:`gateway.backends.remote_http`), decoding the audio
that arrives, and the end of each call's piece.

A call is one provider request: the speaking pipeline never sends more than
``max_input_chars`` (the provider's limit) in one call, so a backend does not cut text itself.
A provider implements :meth:`RemoteBackend._attempt` (one request, streaming its audio) and
:meth:`RemoteBackend.load`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Final

import httpx
import numpy as np
from numpy.typing import NDArray

from gateway.audio.pcmstream import AudioFormatError, Pcm16Reader, WavReader
from gateway.backends.base import (
    WARMUP_TEXT,
    AudioChunk,
    BackendError,
    EngineCounters,
    SynthesisRequest,
    Voice,
    WordTiming,
    listed_voice,
)
from gateway.backends.remote_http import (
    RemoteError,
    RetryPolicy,
    Service,
    classify_status,
    connect_error,
    get_json,
    keyed_service,
    parse_retry_after,
    reason,
    resolve_api_key,
    retrying,
    stream_http,
)
from gateway.backends.settings import RemoteSettings
from gateway.core.segmenter import TextPart, final_boundary

__all__ = [
    "SAMPLE_RATE",
    "AudioDecoder",
    "ChunkCoalescer",
    "RemoteBackend",
    "RemoteError",
    "RetryPolicy",
    "Service",
    "TextPart",
    "classify_status",
    "connect_error",
    "get_json",
    "keyed_service",
    "language_tag",
    "parse_retry_after",
    "resolve_api_key",
    "retrying",
    "stream_http",
]

log = logging.getLogger(__name__)

Pcm = NDArray[np.float32]
SAMPLE_RATE: Final = 24000  # what the providers are asked for, where they take a rate
_MIN_CHUNK_S: Final = 0.04  # network chunks are joined to at least this much audio


# -- text --------------------------------------------------------------------------------------


def whole_text(text: str) -> TextPart:
    """A call's text as one provider request, with the boundary it ends on."""
    return TextPart(0, len(text), final_boundary(text))


def language_tag(lang: str) -> str:
    """``en-us`` -> ``en``; keeps ``zh-cn`` (AllTalk's code for Chinese)."""
    return lang if lang == "zh-cn" else lang.split("-")[0]


# -- audio -------------------------------------------------------------------------------------


class ChunkCoalescer:
    """Joins small decoded pieces into chunks of at least ``min_samples`` (the last may be
    shorter), so the gateway does not handle a chunk per network packet."""

    def __init__(self, min_samples: int = round(_MIN_CHUNK_S * SAMPLE_RATE)) -> None:
        self._min = min_samples
        self._parts: list[Pcm] = []
        self._size = 0

    def push(self, pcm: Pcm) -> Pcm | None:
        if len(pcm):
            self._parts.append(pcm)
            self._size += len(pcm)
        if self._size < self._min:
            return None
        return self.drain()

    def flush(self, pcm: Pcm) -> Pcm | None:
        """Add the last piece of the stream; returns everything held, however short."""
        if len(pcm):
            self._parts.append(pcm)
            self._size += len(pcm)
        return self.drain()

    def drain(self) -> Pcm | None:
        if not self._size:
            return None
        joined = np.concatenate(self._parts).astype(np.float32, copy=False)
        self._parts, self._size = [], 0
        return joined


_NOT_AUDIO: Final = (
    "application/json",
    "text/",
    "audio/mpeg",
    "audio/ogg",
    "audio/opus",
    "audio/aac",
    "audio/flac",
)


class AudioDecoder:
    """An HTTP body of raw 24 kHz s16le PCM, or of WAV at its own rate (:attr:`sample_rate`
    once the header is read; the pipeline resamples it, in the one place it resamples).

    With ``wav=False`` the body is raw PCM unless the response's content type says WAV; a
    content type that is clearly not PCM (JSON, text, MP3...) is an error, never noise.
    """

    def __init__(self, service: Service, *, wav: bool) -> None:
        self._service = service
        self._wav: WavReader | None = WavReader() if wav else None
        self._pcm = Pcm16Reader()
        self.samples = 0

    @property
    def sample_rate(self) -> int:
        """The rate of the audio decoded so far."""
        wav = self._wav
        return wav.sample_rate if wav is not None and wav.header_done else SAMPLE_RATE

    def check_response(self, response: httpx.Response) -> None:
        """Pick the decoder from the response's content type (pass as ``on_response``)."""
        content_type = response.headers.get("content-type", "").lower()
        if "wav" in content_type:
            self._wav = self._wav or WavReader()
        elif self._wav is None and content_type.startswith(_NOT_AUDIO):
            raise RemoteError(
                f"{self._service.provider} ({self._service.base_url}) answered with "
                f"{content_type!r}, not raw PCM; does it support response_format 'pcm'?"
            )

    def feed(self, data: bytes) -> Pcm:
        try:
            pcm = self._pcm.feed(data) if self._wav is None else self._wav.feed(data)
        except AudioFormatError as exc:
            raise RemoteError(f"{self._service.provider} sent unreadable audio: {exc}") from None
        self.samples += len(pcm)
        return pcm

    def finish(self) -> None:
        """The body ended: raises if it was cut short."""
        try:
            if self._wav is None:
                self._pcm.finish()
            else:
                self._wav.finish()
        except AudioFormatError as exc:
            raise RemoteError(
                f"{self._service.provider} ({self._service.base_url}) cut the audio short: {exc}"
            ) from None


# -- the base backend --------------------------------------------------------------------------


class RemoteBackend(abc.ABC):
    """Base of the HTTP/WebSocket backends; see the module docstring."""

    sample_rate: int = SAMPLE_RATE
    streams_within_segment = True
    native_word_timing = False
    provider: str = "remote"
    model: str | None = None

    def __init__(
        self, name: str, settings: RemoteSettings, service: Service, *, default_voice: str
    ) -> None:
        self.name = name
        self.kind = settings.kind
        self.default_voice = default_voice
        self.default_lang = settings.default_lang
        self.max_input_chars: int | None = settings.max_input_chars
        self.languages: tuple[str, ...] = settings.languages
        self._settings = settings
        self.service = service
        self.policy = RetryPolicy.from_settings(settings)
        self._rng = random.Random()
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # between retries
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._client: httpx.AsyncClient | None = None
        self._ready = False
        self._voices: list[Voice] = []
        # Provider requests (HTTP or WebSocket) open right now; audio decoded from the
        # provider's answers, all requests.
        self.counters = EngineCounters()

    @property
    def lanes(self) -> int:
        """Provider requests open at once at most."""
        return self._settings.max_concurrency

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client (made on first use, in the running event loop)."""
        if self._client is None:
            s = self._settings
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    connect=s.connect_timeout_s,
                    read=max(s.first_byte_timeout_s, s.read_timeout_s),
                    write=max(s.first_byte_timeout_s, s.read_timeout_s),
                    pool=None,
                ),
                limits=httpx.Limits(
                    max_connections=s.max_concurrency, max_keepalive_connections=s.max_concurrency
                ),
                headers={"user-agent": "tts-gateway"},
            )
        return self._client

    async def aclose(self) -> None:
        self._ready = False
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def voices(self) -> list[Voice]:
        return list(self._voices)

    def resolve_voice(self, name: str) -> str:
        return listed_voice(self, name)

    @abc.abstractmethod
    async def load(self) -> None:
        """Check the service (and list voices where it can); raises BackendError."""

    async def _become_ready(self) -> None:
        """The service checked out: ready, after one short request if ``warmup`` is set (a
        failing warm-up leaves the backend not ready)."""
        self._ready = True
        if not self._settings.warmup:
            return
        request = SynthesisRequest(WARMUP_TEXT, self.default_voice, self.default_lang, 1.0)
        try:
            async for _ in self.synthesize(request):
                pass
        except BackendError:
            self._ready = False
            raise

    # -- synthesis -----------------------------------------------------------------------------

    async def synthesize(self, request: SynthesisRequest) -> AsyncGenerator[AudioChunk, None]:
        """Stream one call: one provider request (retried as the policy allows), one piece."""
        self._check(request)
        if not request.text.strip():
            return
        part = whole_text(request.text)
        words: list[WordTiming] = []
        async with self._retried(request, part) as chunks:
            async for chunk in chunks:
                if chunk.piece_end is not None:  # only the attempt's final words
                    words.extend(chunk.words)
                    if not len(chunk.pcm):
                        continue
                    chunk = AudioChunk(chunk.pcm, words=(), sample_rate=chunk.sample_rate)
                yield chunk
        yield AudioChunk(np.zeros(0, np.float32), piece_end=part.boundary, words=tuple(words))

    @contextlib.asynccontextmanager
    async def _retried(
        self, request: SynthesisRequest, part: TextPart
    ) -> AsyncIterator[AsyncGenerator[AudioChunk, None]]:
        """The attempts at ``part``, retried by the policy, within a concurrency slot."""

        def attempt() -> AsyncGenerator[AudioChunk, None]:
            return self._guarded_attempt(request, part)

        retried = retrying(attempt, self.policy, what=self.name, rng=self._rng, sleep=self.sleep)
        async with self._slots, contextlib.aclosing(retried) as chunks:
            yield chunks

    async def _guarded_attempt(
        self, request: SynthesisRequest, part: TextPart
    ) -> AsyncGenerator[AudioChunk, None]:
        """One attempt; anything unexpected becomes a BackendError that names the provider."""
        self.counters.running += 1
        try:
            async with contextlib.aclosing(self._attempt(request, part)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except BackendError:
            raise
        except (httpx.HTTPError, OSError, ValueError) as exc:
            raise RemoteError(f"{self.provider} ({self.service.base_url}): {reason(exc)}") from exc
        finally:
            self.counters.running -= 1

    async def _post_for_audio(
        self, path: str, payload: dict[str, Any], *, wav: bool, headers: dict[str, str]
    ) -> AsyncGenerator[AudioChunk, None]:
        """POST ``payload`` (JSON) to ``path`` of the service; its answer is the audio (raw
        PCM, or WAV with ``wav``), streamed as chunks of at least 40 ms; RemoteError if it
        holds no audio."""
        settings = self._settings
        http_request = self.client.build_request(
            "POST", f"{settings.base_url}{path}", json=payload, headers=headers
        )
        decoder = AudioDecoder(self.service, wav=wav)
        coalescer = ChunkCoalescer()
        async with contextlib.aclosing(
            stream_http(
                self.client,
                http_request,
                self.service,
                first_byte_timeout_s=settings.first_byte_timeout_s,
                read_timeout_s=settings.read_timeout_s,
                on_response=decoder.check_response,
            )
        ) as body:
            async for data in body:
                pcm = coalescer.push(self._received(decoder.feed(data)))
                if pcm is not None:
                    yield AudioChunk(pcm, sample_rate=decoder.sample_rate)
        decoder.finish()
        rest = coalescer.drain()
        if rest is not None:
            yield AudioChunk(rest, sample_rate=decoder.sample_rate)
        if decoder.samples == 0:
            raise RemoteError(f"{self.provider} ({self.service.base_url}) sent no audio")

    def _received(self, pcm: Pcm) -> Pcm:
        """Count audio as it is decoded from the provider's answer (before any buffering)."""
        self.counters.samples += len(pcm)
        return pcm

    def _check(self, request: SynthesisRequest) -> None:
        if not self._ready:
            raise BackendError(f"backend {self.name!r} is not loaded")
        if request.lang not in self.languages:
            raise BackendError(f"language {request.lang!r} is not supported by {self.name!r}")

    @abc.abstractmethod
    def _attempt(
        self, request: SynthesisRequest, part: TextPart
    ) -> AsyncGenerator[AudioChunk, None]:
        """One request for ``request.text[part.start:part.end]``, streaming its audio.

        Raise RemoteError (retryable where repeating may help). The attempt's word timings
        (char offsets into ``request.text``, samples from the start of the part) go on its
        chunks; words known only at the end go on a final chunk with ``piece_end`` set (its
        pcm may be empty).
        """
