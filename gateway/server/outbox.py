"""The sending side of a WebSocket session: one message at a time, each within a deadline, and
the close.

Sends are serialized by a lock. Every send (and the close) must complete within
``limits.slow_client_grace_s``: one that cannot (the client does not read and the socket is full)
gives up on the client: nothing more is sent and the connection is dropped (its
:class:`~gateway.server.link.Link`, when the gateway's protocols serve it), so neither the
session nor its buffers outlive the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.core.errors import GatewayError
from gateway.core.protocol import ServerMessage, encode_server_message
from gateway.server.link import Link

__all__ = ["Closed", "Outbox"]

log = logging.getLogger(__name__)


class Closed(GatewayError):
    """The socket is gone (or was given up on); the session ends."""


class Outbox:
    """Sends a session's messages over its WebSocket (one owner).

    ``deadline_s``: the longest one send (or the close) may take; ``link``: the connection, to
    drop when the client is given up on (None: the ASGI server closes it in its own time).
    """

    def __init__(self, websocket: WebSocket, *, deadline_s: float, link: Link | None) -> None:
        self._ws = websocket
        self._deadline_s = deadline_s
        self._link = link
        self._lock = asyncio.Lock()
        self.closed = False
        self.gave_up = asyncio.Event()

    async def send(self, message: ServerMessage) -> None:
        """Send one message; :class:`Closed` if the socket is gone or the send missed its
        deadline (then the client is given up on). Cancel-safe: a cancelled send either went
        out whole or not at all."""
        data = encode_server_message(message)
        async with self._lock:
            if self.closed:
                raise Closed
            try:
                async with asyncio.timeout(self._deadline_s):
                    await self._ws.send_bytes(data)
            except TimeoutError:
                self.give_up(f"a send did not complete in {self._deadline_s:g} s")
                raise Closed from None
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                self.closed = True
                raise Closed from exc

    def give_up(self, why: str) -> None:
        """The client does not read; its socket is full, so no close frame can reach it
        either: send nothing more and drop the connection (the session's tasks end, its slot
        and memory are freed)."""
        if self.gave_up.is_set():
            return
        log.warning("gave up on a client that does not read: %s", why)
        self.closed = True
        self.gave_up.set()
        if self._link is not None:
            self._link.abort()

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` (once; after the messages already being sent), within
        the deadline."""
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                async with asyncio.timeout(self._deadline_s):
                    with contextlib.suppress(Exception):
                        await self._ws.close(code, reason)
            except TimeoutError:
                self.give_up(f"the close did not complete in {self._deadline_s:g} s")
