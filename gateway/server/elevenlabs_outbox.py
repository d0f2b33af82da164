"""The sending side of an ElevenLabs-compatible socket: a bounded queue and one writer task.

Every context of the socket queues its frames, its last messages and its errors here; the
writer sends them as JSON text frames, in order. Frames of one context queued back to back
(the speaking pipeline hands over a few at a time) go out as one audio message, up to the
context's longest message, so the audio is never held back waiting for more: what is queued when
the writer is free goes out at once. Each send has a deadline (``limits.slow_client_grace_s``):
a client that stops reading is given up on, and the socket's tasks end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.audio.framing import Frame
from gateway.server.outbox import Closed

__all__ = ["AudioSource", "Closed", "SocketOutbox"]

# Items the queue holds before a producer waits (frames are 20 ms at the default frame length).
_QUEUED_ITEMS: Final = 256


class AudioSource(Protocol):
    """A context, as the writer sees it: how its frames become messages."""

    @property
    def aborted(self) -> bool:
        """Closed by the client mid-speech: its queued audio is dropped."""
        ...

    @property
    def max_frames(self) -> int:
        """The most frames one audio message carries."""
        ...

    def render(self, frames: list[Frame]) -> dict[str, Any] | None:
        """The audio message for these frames (None: the encoder has no bytes for them yet)."""
        ...

    def finish(self) -> list[dict[str, Any]]:
        """The context's last messages: its encoder's tail and last characters, then
        ``isFinal``."""
        ...


@dataclass(frozen=True, slots=True)
class _Audio:
    source: AudioSource
    frame: Frame


@dataclass(frozen=True, slots=True)
class _Finish:
    source: AudioSource


@dataclass(frozen=True, slots=True)
class _Message:
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


_Item = _Audio | _Finish | _Message | _Close


class SocketOutbox:
    """Queues a socket's messages and sends them from :meth:`run` (the writer task, owned by
    the socket). Every ``put`` waits while the queue is full (backpressure on the speakers);
    all raise :class:`Closed` once the socket is closed or given up on."""

    def __init__(self, websocket: WebSocket, *, send_timeout_s: float) -> None:
        self._ws = websocket
        self._send_timeout_s = send_timeout_s
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(_QUEUED_ITEMS)
        self.closed = False
        self.given_up = False

    async def audio(self, source: AudioSource, frame: Frame) -> None:
        """Queue one frame of a context."""
        await self._put(_Audio(source, frame))

    async def finish(self, source: AudioSource) -> None:
        """Queue a context's end (after all its frames)."""
        await self._put(_Finish(source))

    async def message(self, body: dict[str, Any]) -> None:
        """Queue a message (an error)."""
        await self._put(_Message(body))

    async def close(self, code: int, reason: str) -> None:
        """Queue the close: it goes out after everything queued before it."""
        await self._put(_Close(code, reason[:120]))

    async def _put(self, item: _Item) -> None:
        if self.closed:
            raise Closed
        await self._queue.put(item)

    async def run(self) -> None:
        """Send what is queued until the socket is closed (or the client is given up on).
        Cancel-safe: a message is sent whole or not at all."""
        while not self.closed:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            for item in _coalesced(batch):
                await self._send_item(item)

    async def _send_item(self, item: _Item | list[_Audio]) -> None:
        match item:
            case list():
                source = item[0].source
                if not source.aborted:
                    body = source.render([audio.frame for audio in item])
                    if body is not None:
                        await self._send(body)
            case _Finish(source):
                for body in source.finish():
                    await self._send(body)
            case _Message(body):
                await self._send(body)
            case _Close(code, reason):
                self.closed = True
                with contextlib.suppress(Exception):
                    await self._ws.close(code, reason)

    async def _send(self, body: dict[str, Any]) -> None:
        if self.closed:
            raise Closed
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await self._ws.send_text(data)
        except TimeoutError:
            # The client does not read and its socket is full: nothing more can reach it.
            self.closed = self.given_up = True
            raise Closed from None
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self.closed = True
            raise Closed from exc


def _coalesced(batch: list[_Item]) -> Iterator[_Item | list[_Audio]]:
    """The items in order, with runs of frames of one context joined (up to its longest
    message)."""
    run: list[_Audio] = []
    for item in batch:
        if run and (not isinstance(item, _Audio) or item.source is not run[0].source
                    or len(run) >= run[0].source.max_frames):  # fmt: skip
            yield run
            run = []
        if isinstance(item, _Audio):
            run.append(item)
        else:
            yield item
    if run:
        yield run
