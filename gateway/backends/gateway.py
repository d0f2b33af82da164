"""Upstream tts-gateways as a backend: a model tier reached through our own ``/v1/stream``.

Edge gateways hold many cheap sessions and send synthesis to model gateways (which hold the
engines) through this backend. Each call is one upstream session: ``start`` (raw ``pcm16``,
the call's voice, language and speed, no short first segment: this gateway has segmented the
text already), the call's text in one ``text``, and ``end``, which releases all of it; the
answer is read until ``done``. Closing the call (a cancel, a barge-in) closes the upstream
socket, and the upstream stops its synthesis at once (docs/protocol.md section 2).

The upstream's segments become pieces: the audio of each from its ``segment_start.sample_start``
to its ``segment_end.sample_end``, cut out of the upstream timeline, ending on the segment's
boundary (the last one on the call's own), so this gateway trims and places the seams as for any
engine. The upstream's native ``words`` become :class:`WordTiming` on the request's text (the
upstream's offsets are the call's, since the call's text is all its session text) relative to
the piece. Estimated words are dropped: this gateway estimates for itself.

``urls`` are tried in turn for each call, starting from the one that answered last: a refused
connection or an HTTP 5xx or 429 answer to the upgrade moves on to the next URL at once; when
all fail, the call fails retryably (the retry policy of every remote backend applies). A session
refused before its first audio (``too_many_sessions``, ``shutting_down``, ``backend_unavailable``,
close 1013) is retried on the next URL. A stream cut after some audio fails the call (its audio
cannot be taken back).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from gateway.audio.pcmstream import Pcm16Reader
from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest, Voice, WordTiming
from gateway.backends.remote import (
    RemoteBackend,
    RemoteError,
    TextPart,
    classify_status,
    get_json,
    keyed_service,
    whole_text,
)
from gateway.backends.settings import GatewaySettings
from gateway.core.errors import ErrorCode, ProtocolError
from gateway.core.protocol import Audio as AudioMessage
from gateway.core.protocol import (
    AudioFormat,
    Done,
    End,
    Error,
    Ready,
    SegmentEnd,
    SegmentStart,
    Start,
    Text,
    Words,
    decode_server_message,
    encode_client_message,
)
from gateway.core.seams import SeamConfig, reshaping_pad
from gateway.core.segmenter import Boundary

__all__ = ["GatewayBackend"]

log = logging.getLogger(__name__)
# The websockets library logs handshake headers at DEBUG; they carry the API key.
_socket_log = logging.getLogger(f"{__name__}.socket")
_socket_log.setLevel(logging.INFO)

Pcm = NDArray[np.float32]
_CLOSE_TIMEOUT_S: Final = 1.0
_MIN_CHUNK: Final = 960  # samples (40 ms): audio goes on in chunks of at least this much
_WORD_MARGIN: Final = 480  # samples (20 ms) of audio past a word's end, before it goes on
_MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024
# Upstream refusals that another upstream may not share: try the next URL.
_TRY_ELSEWHERE: Final = frozenset(
    {"too_many_sessions", "shutting_down", "over_capacity", "backend_unavailable", "rate_limited"}
)
_TRY_ELSEWHERE_CLOSES: Final = frozenset({1001, 1006, 1011, 1012, 1013, 1014, 4503})


class _Elsewhere(RemoteError):
    """This upstream cannot take the call now; another one may."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class GatewayBackend(RemoteBackend):
    """Another tts-gateway's backend, through its streaming protocol."""

    provider = "tts-gateway"

    def __init__(self, name: str, settings: GatewaySettings) -> None:
        service = keyed_service(name, "tts-gateway", settings)
        super().__init__(name, settings, service, default_voice=settings.default_voice)
        self.settings = settings
        self.native_word_timing = settings.word_timing
        self._urls = tuple(url.rstrip("/") for url in settings.urls)
        self._first = 0  # the URL that answered last: tried first

    def _headers(self) -> dict[str, str]:
        key = self.service.api_key
        return {"authorization": f"Bearer {key}"} if key else {}

    # -- start-up ------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the upstream backend's voices and languages from the first upstream that
        answers ``GET /v1/voices``; BackendError if none does or none offers the backend."""
        failures: list[str] = []
        for url in self._urls:
            try:
                body = await get_json(
                    self.client,
                    self.service,
                    f"{url}/v1/voices",
                    headers=self._headers(),
                    timeout_s=self.settings.connect_timeout_s + self.settings.read_timeout_s,
                )
            except RemoteError as error:
                if error.status in (401, 403):
                    raise
                failures.append(f"{url}: {error}")
                continue
            self._learn(body, url)
            self._ready = True
            return
        raise RemoteError("no upstream gateway answered: " + "; ".join(failures))

    def _learn(self, body: Any, url: str) -> None:
        upstream = self.settings.backend
        entries = body.get("voices", []) if isinstance(body, dict) else []
        mine = [e for e in entries if isinstance(e, dict) and e.get("backend") == upstream]
        if not mine:
            raise BackendError(
                f"{self.name}: the upstream gateway at {url} offers no voices of a backend "
                f"{upstream!r} (set backends.{self.name}.backend)"
            )
        self._voices = [
            Voice(
                str(e["id"]),
                str(e.get("name") or e["id"]),
                e.get("language"),
                e.get("gender"),
                tuple(str(lang) for lang in e.get("languages") or ()),
            )
            for e in mine
        ]
        if not self.settings.languages:
            listed = body.get("languages")
            if isinstance(listed, dict) and isinstance(listed.get(upstream), list):
                self.languages = tuple(str(lang) for lang in listed[upstream])
            else:  # an upstream older than the top-level list: its voices' languages
                langs = dict.fromkeys(lang for v in self._voices for lang in v.languages)
                self.languages = tuple(langs)
        if self.default_voice not in {v.id for v in self._voices}:
            raise BackendError(
                f"{self.name}: default_voice {self.default_voice!r} is not a voice of the "
                f"upstream backend {upstream!r}"
            )
        if self.default_lang not in self.languages:
            raise BackendError(
                f"{self.name}: default_lang {self.default_lang!r} is not a language of the "
                f"upstream backend {upstream!r}"
            )

    # -- synthesis -----------------------------------------------------------------------------

    async def synthesize(self, request: SynthesisRequest) -> AsyncGenerator[AudioChunk, None]:
        """Stream one call through an upstream session: one piece per upstream segment, each
        with its words. Safe to cancel: the upstream socket is closed."""
        self._check(request)
        if not request.text.strip():
            return
        # As RemoteBackend.synthesize, without its one-piece ending: each upstream segment is
        # a piece, its words on the chunks that hold them.
        async with self._retried(request, whole_text(request.text)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _attempt(
        self, request: SynthesisRequest, part: TextPart
    ) -> AsyncGenerator[AudioChunk, None]:
        ws, url = await self._connect()
        try:
            pieces = _Pieces(request.text, part.boundary, keep_words=self.native_word_timing)
            try:
                await self._open_session(ws, request, url)
                async for chunk in self._read(ws, pieces, url):
                    yield chunk
            except ConnectionClosed as closed:
                raise self._closed_error(closed, url, pieces.samples) from None
        except _Elsewhere:
            self._first = (self._urls.index(url) + 1) % len(self._urls)  # the retry goes on
            raise
        finally:
            await ws.close()

    async def _connect(self) -> tuple[ClientConnection, str]:
        """A socket to the first upstream that takes it, from the one that answered last."""
        failures: list[str] = []
        count = len(self._urls)
        for step in range(count):
            index = (self._first + step) % count
            url = self._urls[index]
            try:
                ws = await self._open(url)
            except _Elsewhere as error:
                failures.append(str(error))
                log.warning("%s: %s; trying the next upstream", self.name, error)
                continue
            self._first = index
            return ws, url
        raise RemoteError("no upstream gateway took the call: " + "; ".join(failures),
                          retryable=True)  # fmt: skip

    async def _open(self, url: str) -> ClientConnection:
        scheme, rest = url.split("://", 1)
        ws_url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/v1/stream"
        try:
            return await connect(
                ws_url,
                additional_headers=self._headers(),
                open_timeout=self.settings.connect_timeout_s,
                close_timeout=_CLOSE_TIMEOUT_S,
                max_size=_MAX_MESSAGE_BYTES,
                compression=None,
                ping_interval=None,
                proxy=None,
                user_agent_header="tts-gateway",
                logger=_socket_log,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            error = classify_status(
                self.service,
                status,
                bytes(exc.response.body or b""),
                exc.response.headers.get("retry-after"),
            )
            if status == 429 or status >= 500:
                raise _Elsewhere(f"{url}: {error}") from None
            raise error from None
        except (InvalidURI, InvalidHandshake) as exc:
            raise RemoteError(f"{url} refused the WebSocket upgrade ({exc})") from None
        except (OSError, TimeoutError) as exc:
            raise _Elsewhere(f"{url}: {type(exc).__name__} {exc}".rstrip()) from None

    async def _open_session(
        self, ws: ClientConnection, request: SynthesisRequest, url: str
    ) -> None:
        start = Start(
            backend=self.settings.backend,
            voice=request.voice,
            lang=request.lang,
            speed=request.speed,
            format=AudioFormat.PCM16,
            short_first_segment=False,
        )
        for message in (start, Text(request.text), End()):
            await ws.send(encode_client_message(message))
        ready = await self._receive(ws, url, self.settings.first_byte_timeout_s)
        if isinstance(ready, Error):
            raise self._error(ready, url, delivered=False)
        if not isinstance(ready, Ready) or ready.format != AudioFormat.PCM16.value:
            raise RemoteError(f"{url} did not answer start with a pcm16 ready")
        if ready.sample_rate != self.sample_rate:
            raise RemoteError(f"{url} streams at {ready.sample_rate} Hz, not {self.sample_rate}")

    async def _read(
        self, ws: ClientConnection, pieces: _Pieces, url: str
    ) -> AsyncGenerator[AudioChunk, None]:
        """The upstream session's messages, as chunks, until ``done``."""
        while True:
            wait = (
                self.settings.first_byte_timeout_s
                if pieces.samples == 0
                else self.settings.read_timeout_s
            )
            message = await self._receive(ws, url, wait)
            if isinstance(message, AudioMessage):
                self._received(pieces.audio(message))
            elif isinstance(message, SegmentStart):
                pieces.segment_start(message)
            elif isinstance(message, Words):
                pieces.words(message)
            elif isinstance(message, SegmentEnd):
                pieces.segment_end(message)
            elif isinstance(message, Error):
                raise self._error(message, url, delivered=pieces.samples > 0)
            elif isinstance(message, Done):
                pieces.finish()
            for chunk in pieces.ready_chunks():
                yield chunk
            if isinstance(message, Done):
                return

    async def _receive(self, ws: ClientConnection, url: str, wait: float) -> Any:
        try:
            async with asyncio.timeout(wait):
                frame = await ws.recv()
        except TimeoutError:
            raise RemoteError(
                f"the upstream gateway at {url} sent nothing for {wait:g} s"
            ) from None
        if isinstance(frame, str):
            raise RemoteError(f"the upstream gateway at {url} sent a text frame")
        try:
            return decode_server_message(frame)
        except ProtocolError as error:
            if error.code is ErrorCode.UNKNOWN_TYPE:
                return None  # a message type newer than this gateway: ignored (protocol §14)
            raise RemoteError(f"the upstream gateway at {url} sent {error}") from None

    def _error(self, error: Error, url: str, *, delivered: bool) -> RemoteError:
        text = f"the upstream gateway at {url}: {error.code}: {self.service.redact(error.message)}"
        if error.code in _TRY_ELSEWHERE and not delivered:
            return _Elsewhere(text)
        if error.code == "unauthorized":
            return RemoteError(text, status=401)
        return RemoteError(text, retryable=not delivered and error.fatal)

    def _closed_error(self, closed: ConnectionClosed, url: str, samples: int) -> RemoteError:
        frame = closed.rcvd
        code = frame.code if frame is not None else 1006
        cut = "after part of the audio" if samples else "before any audio"
        text = f"the upstream gateway at {url} closed the session {cut} (code {code})"
        if not samples and code in _TRY_ELSEWHERE_CLOSES:
            return _Elsewhere(text)
        return RemoteError(text)


@dataclass(slots=True)
class _Segment:
    """An upstream segment being received: where it lies on the upstream timeline."""

    start: int
    boundary: Boundary
    end: int | None = None
    words: list[WordTiming] = field(default_factory=list)  # not handed on yet
    begun: bool = False  # its first chunk (with the padding) has been handed on
    timed: bool = False  # some of its words have been handed on


class _Pieces:
    """Cuts the upstream timeline into pieces, one per upstream segment, with their words.

    Each piece starts with :func:`reshaping_pad` samples of silence, so this gateway's seam
    shaper keeps exactly the audio the upstream's kept (with the same ``[seams]`` settings).
    A word goes on the chunk whose audio holds its end and ``_WORD_MARGIN`` more (the shaper
    clamps words to the audio it has seen), audio goes on in chunks of ``_MIN_CHUNK`` at least.
    """

    def __init__(self, text: str, last_boundary: Boundary, *, keep_words: bool) -> None:
        self._text_length = len(text)
        self._last_boundary = last_boundary
        self._keep_words = keep_words
        self._pad = reshaping_pad(SeamConfig())
        self._reader = Pcm16Reader()
        self._audio = np.zeros(0, np.float32)  # received, not yet handed on
        self._audio_start = 0  # its timeline position
        self._segments: list[_Segment] = []
        self._done = False
        self.samples = 0  # received in all

    def audio(self, message: AudioMessage) -> Pcm:
        end = self._audio_start + len(self._audio)
        if message.sample_start != end:
            raise RemoteError(f"upstream audio jumped from sample {end} to {message.sample_start}")
        pcm = self._reader.feed(message.data)
        self._audio = np.concatenate([self._audio, pcm])
        self.samples += len(pcm)
        return pcm

    def segment_start(self, message: SegmentStart) -> None:
        try:
            boundary = Boundary(message.boundary)
        except ValueError:  # a boundary kind newer than this gateway
            boundary = Boundary.WORD
        if message.char_end >= self._text_length:
            boundary = self._last_boundary  # the call's own end: its seam is this gateway's
        self._segments.append(_Segment(message.sample_start, boundary))

    def words(self, message: Words) -> None:
        if message.estimated or not self._keep_words or not self._segments:
            return
        segment = self._segments[-1]
        shift = self._pad - segment.start
        segment.words += [
            WordTiming(
                int(w["char_start"]),
                int(w["char_end"]),
                int(w["sample_start"]) + shift,
                int(w["sample_end"]) + shift,
                w.get("spoken"),
            )
            for w in message.words
        ]

    def segment_end(self, message: SegmentEnd) -> None:
        if self._segments:
            self._segments[-1].end = message.sample_end

    def finish(self) -> None:
        self._done = True

    def ready_chunks(self) -> list[AudioChunk]:
        """The audio received so far that belongs to a segment, cut at segment ends."""
        chunks: list[AudioChunk] = []
        while self._segments:
            segment = self._segments[0]
            chunk = self._next_chunk(segment)
            if chunk is not None:
                chunks.append(chunk)
            if chunk is None or chunk.piece_end is None:
                break
            self._segments.pop(0)
        if self._done and self._segments:
            raise RemoteError("the upstream gateway ended the session inside a segment")
        return chunks

    def _next_chunk(self, segment: _Segment) -> AudioChunk | None:
        self._take_until(segment.start)  # anything before the segment: a drain, not speech
        available = self._audio_start + len(self._audio)
        complete = segment.end is not None and available >= segment.end
        upto = segment.end if complete and segment.end is not None else available
        if not complete and upto - self._audio_start < _MIN_CHUNK:
            return None
        # Piece positions: the padding, then the segment from its start.
        end_in_piece = self._pad + upto - segment.start
        going: list[WordTiming] = []
        held: list[WordTiming] = []
        for word in segment.words:
            covered = complete or word.sample_end + _WORD_MARGIN <= end_in_piece
            (going if covered else held).append(word)
        if not complete and self._keep_words and not segment.timed and not going:
            return None  # a native segment's first audio comes with its first word
        segment.timed = segment.timed or bool(going)
        segment.words = held
        pcm = self._take_until(upto)
        if not segment.begun:
            pcm = np.concatenate([np.zeros(self._pad, np.float32), pcm])
            segment.begun = True
        return AudioChunk(pcm, piece_end=segment.boundary if complete else None, words=tuple(going))

    def _take_until(self, position: int) -> Pcm:
        count = max(0, min(position - self._audio_start, len(self._audio)))
        taken, self._audio = self._audio[:count], self._audio[count:]
        self._audio_start += count
        return taken
