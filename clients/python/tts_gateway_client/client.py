"""An asyncio client for ``/v1/stream``: send text (or an async iterator of text), read messages.

The stream owns at most one feeder task (started by :meth:`SpeechStream.feed`); leaving the
``connect`` context cancels and awaits it and closes the socket.

Read the session either message by message (``async for message in stream``) or with one of the
helpers, which yield one kind and record the rest on the stream (``words``, ``last_progress``,
``errors``, ``done``): :meth:`SpeechStream.iter_pcm` (decoded audio as numpy arrays),
:meth:`SpeechStream.iter_opus` (raw packets), :meth:`SpeechStream.iter_words` and
:meth:`SpeechStream.iter_progress`. One reader at a time: each consumes the same socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from gateway.audio.codecs import frame_decoder
from gateway.core.protocol import (
    Audio,
    AudioFormat,
    Cancel,
    ClientMessage,
    Done,
    End,
    Error,
    ErrorCode,
    Estimate,
    Flush,
    Progress,
    ProtocolError,
    Ready,
    ServerMessage,
    Start,
    Text,
    Words,
    decode_server_message,
    encode_client_message,
)
from tts_gateway_client.resume import ResumeBook, Shift

__all__ = ["ClientError", "PcmChunk", "SentText", "SpeechStream", "connect"]

DEFAULT_URL = "ws://127.0.0.1:8765/v1/stream"
# A socket closed with one of these (or cut without a close), or a fatal error with one of
# these codes, is a gateway gone away: a stream with resume on continues on a new session.
RESUMABLE_CLOSES = frozenset({1001, 1006, 1011, 1012, 1013, 1014, 4503})
RESUMABLE_ERRORS = frozenset({"shutting_down", "over_capacity", "internal_error"})
_RESUME_ROUNDS = 3  # tries of every URL before giving up
_RESUME_BACKOFF_S = 0.5  # wait before the second round, doubled for each further one

Reconnect = Callable[[], Awaitable[tuple[ClientConnection, Ready]]]


class ClientError(Exception):
    """The gateway refused the session or could not be reached."""


@dataclass(frozen=True, slots=True)
class PcmChunk:
    """Decoded audio: float32 mono ``samples`` at ``ready.sample_rate``, the first of them at
    timeline position ``sample_start`` (the Opus pre-skip is part of the timeline, section 6 of
    docs/protocol.md)."""

    sample_start: int
    samples: NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class SentText:
    """When a message left the client and how many characters had been sent by then."""

    at: float
    chars: int
    kind: str


class SpeechStream:
    """One session on the gateway. Create it with :func:`connect`.

    With resume (``connect(..., resume=True)``), a socket that drops before ``done`` is
    replaced by a new session (on the next URL, or the same balancer URL) that is sent the
    text the gateway had not reported spoken (see :mod:`tts_gateway_client.resume`); its
    messages arrive on the original offsets and timeline, and :attr:`resumes` counts the new
    sessions. Resuming happens while reading: the reader must be running.
    """

    def __init__(
        self, socket: ClientConnection, ready: Ready, reconnect: Reconnect | None = None
    ) -> None:
        self.ready = ready
        self._socket = socket
        self._reconnect = reconnect
        self._book = ResumeBook(ready.frame_samples)
        self._shift = Shift()
        self._lock = asyncio.Lock()  # one send, or one resume, at a time
        self.resumes = 0
        self._feeder: asyncio.Task[None] | None = None
        self.sent: list[SentText] = []
        self._chars = 0
        self.last_progress: Progress | None = None
        self.errors: list[Error] = []
        self.done: Done | None = None
        self._words: dict[int, dict[str, Any]] = {}

    async def send_text(self, text: str) -> None:
        """Append text to the session; it is spoken as soon as a segment is complete."""
        await self._send(Text(text), "text", len(text))

    async def flush(self, request_id: int | str | None = None) -> None:
        """Ask for everything sent so far to be spoken now; answered by ``Flushed``."""
        await self._send(Flush(request_id), "flush")

    async def cancel(
        self, request_id: int | str | None = None, *, position: int | None = None
    ) -> None:
        """Barge-in: stop, drop buffered text and audio; answered by ``Cancelled``.

        ``position`` is the playback position (timeline samples), so the answer can tell
        exactly what was heard.
        """
        await self._send(Cancel(request_id, position), "cancel")

    async def end(self) -> None:
        """No more text; the gateway finishes speaking, sends ``Done`` and closes."""
        await self._send(End(), "end")

    async def estimate(
        self,
        text: str,
        request_id: int | str | None = None,
        *,
        backend: str | None = None,
        speed: float | None = None,
    ) -> None:
        """Ask what speaking ``text`` would cost (on the session's backend and speed unless
        named); answered by ``Estimated``. Nothing is spoken."""
        await self._send(Estimate(text, request_id, backend, speed), "estimate")

    def feed(self, source: AsyncIterable[str] | Iterable[str], *, end: bool = True) -> None:
        """Send every string of ``source`` in the background (e.g. an LLM's token stream).

        With ``end`` the session is ended after the last one. One feeder at a time.
        """
        if self._feeder is not None and not self._feeder.done():
            raise RuntimeError("a feeder is already running")
        self._feeder = asyncio.create_task(self._feed(source, end=end), name="tts-feeder")

    async def _feed(self, source: AsyncIterable[str] | Iterable[str], *, end: bool) -> None:
        if isinstance(source, AsyncIterable):
            async for text in source:
                await self.send_text(text)
        else:
            for text in source:
                await self.send_text(text)
        if end:
            await self.end()

    async def receive(self) -> ServerMessage:
        """The next message from the gateway; raises ConnectionClosed once the socket closed.

        Message types this client does not know (from a newer gateway) are skipped.
        """
        while True:
            try:
                frame = await _recv_bytes(self._socket)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else 1006
                if not self._may_resume() or code not in RESUMABLE_CLOSES:
                    raise
                await self._resume()
                continue
            try:
                message = self._shift.apply(decode_server_message(frame))
            except ProtocolError as error:
                if error.code is not ErrorCode.UNKNOWN_TYPE:
                    raise
                continue
            if self._gone_away(message) and self._may_resume():
                await self._resume()
                continue
            self._book.received(message)
            return message

    @staticmethod
    def _gone_away(message: ServerMessage) -> bool:
        return isinstance(message, Error) and message.fatal and message.code in RESUMABLE_ERRORS

    def _may_resume(self) -> bool:
        return self._reconnect is not None and self.done is None

    async def _resume(self) -> None:
        """Continue on a new session: send it what the old one had not spoken."""
        assert self._reconnect is not None
        async with self._lock:
            old = self._socket
            socket, ready = await self._reconnect()
            if (ready.format, ready.frame_samples) != (self.ready.format, self.ready.frame_samples):
                await socket.close()
                raise ClientError(f"the resumed session streams {ready.format} differently")
            shift = self._book.resumed_at()
            for message in self._book.replay():
                await socket.send(encode_client_message(message))
            self._socket, self._shift = socket, shift
            self.resumes += 1
        await old.close()

    def __aiter__(self) -> AsyncIterator[ServerMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[ServerMessage]:
        """Every message until the socket closes (``Done`` is the last on a normal end)."""
        while True:
            try:
                message = await self.receive()
            except ConnectionClosed:
                await self._raise_feeder_error()
                return
            self._record(message)
            yield message
            if isinstance(message, Done):
                return

    def _record(self, message: ServerMessage) -> None:
        match message:
            case Words():
                for word in message.words:
                    timed = {**word, "segment": message.segment, "estimated": message.estimated}
                    self._words[word["char_start"]] = timed
            case Progress():
                self.last_progress = message
            case Error():
                self.errors.append(message)
            case Done():
                self.done = message

    @property
    def words(self) -> list[dict[str, Any]]:
        """The word timings received so far, in text order, each kept by ``char_start`` (a later
        message for the same word replaces the earlier one, as docs/protocol.md says). Each is
        the gateway's word map plus its ``segment`` and ``estimated``."""
        return [self._words[start] for start in sorted(self._words)]

    async def iter_pcm(self) -> AsyncIterator[PcmChunk]:
        """Decoded audio until the session ends, in timeline order, without gaps."""
        decoder = frame_decoder(self.ready.format, self.ready.sample_rate)
        position = 0
        session = self.resumes
        async for message in self:
            if not isinstance(message, Audio):
                continue
            if session != self.resumes:  # a new session: a new stream
                decoder = frame_decoder(self.ready.format, self.ready.sample_rate)
                session = self.resumes
            samples = decoder.decode(message.data)
            if samples.size:
                yield PcmChunk(position, samples)
                position += samples.size
        tail = decoder.finish()
        if tail.size:
            yield PcmChunk(position, tail)

    async def iter_opus(self) -> AsyncIterator[Audio]:
        """The ``audio`` frames (raw Opus packets, in ``seq`` order) until the session ends."""
        if self.ready.format != "opus":
            raise ClientError(f"the session streams {self.ready.format}, not opus")
        async for message in self:
            if isinstance(message, Audio):
                yield message

    async def iter_words(self) -> AsyncIterator[dict[str, Any]]:
        """Each word timing as it arrives (a replacement comes again with the same
        ``char_start``); :attr:`words` holds the merged result."""
        async for message in self:
            if isinstance(message, Words):
                for word in message.words:
                    yield {**word, "segment": message.segment, "estimated": message.estimated}

    async def iter_progress(self) -> AsyncIterator[Progress]:
        """The gateway's ``progress`` messages until the session ends."""
        async for message in self:
            if isinstance(message, Progress):
                yield message

    async def aclose(self) -> None:
        """Stop the feeder and close the socket."""
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await self._feeder
        await self._socket.close()

    @property
    def close_code(self) -> int | None:
        return self._socket.close_code

    @property
    def close_reason(self) -> str | None:
        return self._socket.close_reason

    async def _raise_feeder_error(self) -> None:
        if self._feeder is not None and self._feeder.done() and not self._feeder.cancelled():
            error = self._feeder.exception()
            if error is not None and not isinstance(error, ConnectionClosed):
                raise error

    async def _send(self, message: ClientMessage, kind: str, chars: int = 0) -> None:
        async with self._lock:
            self._book.sending(message)
            try:
                await self._socket.send(encode_client_message(message))
            except ConnectionClosed:
                if not self._may_resume():
                    raise
                # The reader resumes the session and sends this again with the rest.
        self._chars += chars
        self.sent.append(SentText(time.monotonic(), self._chars, kind))


@contextlib.asynccontextmanager
async def connect(
    url: str = DEFAULT_URL,
    *,
    backend: str | None = None,
    voice: str | None = None,
    lang: str | None = None,
    speed: float | None = None,
    format: AudioFormat | str | None = None,
    bitrate: int | None = None,
    frame_ms: int | None = None,
    sample_rate: int | None = None,
    short_first_segment: bool | None = None,
    lexicon: list[dict[str, str]] | None = None,
    ssml: bool | None = None,
    open_timeout_s: float = 10.0,
    resume: bool = False,
    resume_urls: Sequence[str] = (),
    **socket_options: Any,
) -> AsyncIterator[SpeechStream]:
    """Open a session: connect, send ``start``, wait for ``ready``.

    With ``resume``, a session whose socket drops mid-turn continues on a new one, on the
    ``resume_urls`` first, then ``url`` (a balancer), with the same ``start`` (see
    :class:`SpeechStream`). Raises ClientError when the gateway cannot be reached or refuses
    the ``start``, and while reading when no gateway takes the resumed session.

    ``lexicon`` is the session's pronunciation lexicon (maps with ``word`` or ``pattern``,
    and ``say``, ``ipa``, ``espeak``, ``case``); with ``ssml`` the text is read as SSML
    (docs/protocol.md, section 3).
    """
    start = Start(
        backend=backend,
        voice=voice,
        lang=lang,
        speed=speed,
        format=AudioFormat(format) if format is not None else None,
        bitrate=bitrate,
        frame_ms=frame_ms,
        sample_rate=sample_rate,
        short_first_segment=short_first_segment,
        lexicon=lexicon,
        ssml=ssml,
    )
    socket, ready = await _open_session(url, start, open_timeout_s, socket_options)
    reconnect = None
    if resume:
        urls = [*resume_urls, url]

        async def reconnect() -> tuple[ClientConnection, Ready]:
            return await _reopen(urls, start, open_timeout_s, socket_options)

    stream = SpeechStream(socket, ready, reconnect)
    try:
        yield stream
    finally:
        await stream.aclose()


async def _open_session(
    url: str, start: Start, open_timeout_s: float, socket_options: dict[str, Any]
) -> tuple[ClientConnection, Ready]:
    try:
        socket = await ws_connect(
            url,
            compression=None,
            open_timeout=open_timeout_s,
            max_size=16 * 2**20,
            **socket_options,
        )
    except (OSError, TimeoutError) as exc:
        raise ClientError(
            f"cannot reach the gateway at {url} ({exc}); start one with `tts-gateway serve`"
        ) from exc
    try:
        await socket.send(encode_client_message(start))
        reply = decode_server_message(await _recv_bytes(socket))
        if isinstance(reply, Error):
            raise ClientError(f"the gateway refused the session: {reply.code}: {reply.message}")
        if not isinstance(reply, Ready):
            raise ClientError(f"expected 'ready', got {reply.TYPE!r}")
    except BaseException:
        await socket.close()
        raise
    return socket, reply


async def _reopen(
    urls: Sequence[str], start: Start, open_timeout_s: float, socket_options: dict[str, Any]
) -> tuple[ClientConnection, Ready]:
    """A new session on the first of ``urls`` that takes it, in a few rounds with backoff."""
    failures: list[str] = []
    for round_number in range(_RESUME_ROUNDS):
        if round_number:
            await asyncio.sleep(_RESUME_BACKOFF_S * 2 ** (round_number - 1))
        for url in urls:
            try:
                return await _open_session(url, start, open_timeout_s, socket_options)
            except (ClientError, ConnectionClosed, InvalidHandshake) as error:
                failures.append(f"{url}: {error}")
    raise ClientError("cannot resume the session: " + "; ".join(failures[-len(urls) :]))


async def _recv_bytes(socket: ClientConnection) -> bytes:
    frame = await socket.recv()
    if isinstance(frame, str):
        raise ClientError(f"unexpected text frame from the gateway: {frame[:80]!r}")
    return frame
