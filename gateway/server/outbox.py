"""The sending side of a WebSocket session: one message at a time, and the close.

Sends are serialized by a lock. :attr:`Outbox.blocked_since` says since when a send has been
under way, so the session's watchdog can give up on a client that stopped reading (one clock
reading per send instead of a timer armed around every frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.core.errors import GatewayError
from gateway.core.protocol import ServerMessage, encode_server_message

__all__ = ["Closed", "Outbox"]


class Closed(GatewayError):
    """The socket is gone (or was given up on); the session ends."""


class Outbox:
    """Sends a session's messages over its WebSocket (one owner)."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        self._lock = asyncio.Lock()
        self.closed = False
        self.blocked_since: float | None = None  # a send under way since then
        self.gave_up = asyncio.Event()

    async def send(self, message: ServerMessage) -> None:
        """Send one message; :class:`Closed` if the socket is gone. Cancel-safe: a cancelled
        send either went out whole or not at all as far as the session is concerned."""
        data = encode_server_message(message)
        async with self._lock:
            if self.closed:
                raise Closed
            self.blocked_since = time.monotonic()
            try:
                await self._ws.send_bytes(data)
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                self.closed = True
                raise Closed from exc
            finally:
                self.blocked_since = None

    def give_up(self) -> None:
        """The client stopped reading; its socket is full, so no close frame can reach it
        either: send nothing more (the session's tasks end, its slot and memory are freed)."""
        self.closed = True
        self.gave_up.set()

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` (once; after the messages already being sent)."""
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(Exception):
                await self._ws.close(code, reason)
