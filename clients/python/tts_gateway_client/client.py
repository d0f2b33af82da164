"""An asyncio client for ``/v1/stream``: send text (or an async iterator of text), read messages.

The stream owns at most one feeder task (started by :meth:`SpeechStream.feed`); leaving the
``connect`` context cancels and awaits it and closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from gateway.core.protocol import (
    AudioFormat,
    Cancel,
    ClientMessage,
    Done,
    End,
    Error,
    ErrorCode,
    Flush,
    ProtocolError,
    Ready,
    ServerMessage,
    Start,
    Text,
    decode_server_message,
    encode_client_message,
)

__all__ = ["ClientError", "SentText", "SpeechStream", "connect"]

DEFAULT_URL = "ws://127.0.0.1:8765/v1/stream"


class ClientError(Exception):
    """The gateway refused the session or could not be reached."""


@dataclass(frozen=True, slots=True)
class SentText:
    """When a message left the client and how many characters had been sent by then."""

    at: float
    chars: int
    kind: str


class SpeechStream:
    """One session on the gateway. Create it with :func:`connect`."""

    def __init__(self, socket: ClientConnection, ready: Ready) -> None:
        self.ready = ready
        self._socket = socket
        self._feeder: asyncio.Task[None] | None = None
        self.sent: list[SentText] = []
        self._chars = 0

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
            frame = await _recv_bytes(self._socket)
            try:
                return decode_server_message(frame)
            except ProtocolError as error:
                if error.code is not ErrorCode.UNKNOWN_TYPE:
                    raise

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
            yield message
            if isinstance(message, Done):
                return

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
        await self._socket.send(encode_client_message(message))
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
    short_first_segment: bool | None = None,
    open_timeout_s: float = 10.0,
    **socket_options: Any,
) -> AsyncIterator[SpeechStream]:
    """Open a session: connect, send ``start``, wait for ``ready``.

    Raises ClientError when the gateway cannot be reached or refuses the ``start``.
    """
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
    stream: SpeechStream | None = None
    try:
        start = Start(
            backend=backend,
            voice=voice,
            lang=lang,
            speed=speed,
            format=AudioFormat(format) if format is not None else None,
            bitrate=bitrate,
            frame_ms=frame_ms,
            short_first_segment=short_first_segment,
        )
        await socket.send(encode_client_message(start))
        reply = decode_server_message(await _recv_bytes(socket))
        if isinstance(reply, Error):
            raise ClientError(f"the gateway refused the session: {reply.code}: {reply.message}")
        if not isinstance(reply, Ready):
            raise ClientError(f"expected 'ready', got {reply.TYPE!r}")
        stream = SpeechStream(socket, reply)
        yield stream
    finally:
        if stream is not None:
            await stream.aclose()
        else:
            await socket.close()


async def _recv_bytes(socket: ClientConnection) -> bytes:
    frame = await socket.recv()
    if isinstance(frame, str):
        raise ClientError(f"unexpected text frame from the gateway: {frame[:80]!r}")
    return frame
