"""uvicorn's HTTP (h11) and WebSocket (websockets, sans-I/O) protocols with the gateway's limits
on connections, which an ASGI application cannot enforce by itself:

- **a connection cap** (``server.max_connections``): a connection beyond it is answered 503
  and closed at once, before anything is read;
- **a header timeout** (``server.header_timeout_s``): a request head (of the first request, or of
  the next one on a kept-alive connection) that has not arrived in full by then is answered 408
  and the connection closed, so slow-loris connections cannot pile up;
- **control frames count** (WebSocket): pings and unsolicited pongs take from the session's
  message budget (``limits.max_messages_per_s``); beyond it they are not answered and the session
  is ended as for too many messages;
- **a send buffer limit** (``limits.max_send_buffer_bytes``): a connection whose outgoing
  buffer grows beyond it (a client that sends but does not read) is dropped, whatever is queued;
- **read probes** (WebSocket): a ping after data sent (at most one out at a time), whose pong
  says that the client has read everything before it (:class:`~gateway.server.link.SocketLink`).

Each connection's :class:`~gateway.server.link.Link` is put in its ASGI scope, so the edges can
drop a connection (:meth:`Link.abort`) instead of waiting for a peer that does not read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar, Final

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame

from gateway.server.link import LINK_KEY, Link, LinkSettings, SocketLink

__all__ = ["GatewayHttpProtocol", "GatewayWebSocketProtocol", "protocol_classes"]

log = logging.getLogger(__name__)


def _plain_response(status: int, phrase: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


_TOO_MANY: Final = _plain_response(
    503, "Service Unavailable", "too_many_connections", "the gateway has its maximum of connections"
)
_TOO_SLOW: Final = _plain_response(
    408, "Request Timeout", "request_timeout", "the request head did not arrive in time"
)


class GatewayHttpProtocol(H11Protocol):
    """uvicorn's h11 protocol with the connection cap and the header timeout."""

    settings: ClassVar[LinkSettings]
    _refused = False
    _head_timer: asyncio.TimerHandle | None = None
    _link: Link | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.settings.max_connections:
            self._refused = True
            log.warning("refused a connection: %d are open", len(self.connections))
            transport.write(_TOO_MANY)
            transport.close()
            return
        super().connection_made(transport)
        self._link = Link(transport.abort)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        self._watch_head()

    def eof_received(self) -> None:
        if not self._refused:
            super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._disarm_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        scope: dict[str, Any] | None = self.scope  # type: ignore[assignment]
        if scope is not None and scope.get("type") == "http":
            scope.setdefault("extensions", {})[LINK_KEY] = self._link

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()

    # -- the header timeout --------------------------------------------------------------------

    def _watch_head(self) -> None:
        """Time the head of a request from its first byte (or the connection's start) until it
        is complete; a connection upgraded to a WebSocket is no longer ours."""
        if self.transport.get_protocol() is not self or self.transport.is_closing():
            self._disarm_head_timer()
        elif self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()  # a whole head has arrived: the request is being served
        elif self.conn.trailing_data[0] and self._head_timer is None:
            self._arm_head_timer()  # the next request on a kept-alive connection has begun

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.settings.header_timeout_s, self._too_slow)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info("closed a connection: no complete request head within %g s",
                     self.settings.header_timeout_s)  # fmt: skip
            self.transport.write(_TOO_SLOW)
            self.transport.close()


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with control frames on the message budget, the send buffer
    limit and read probes."""

    settings: ClassVar[LinkSettings]
    link: SocketLink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.link = SocketLink(self.settings, abort=self._abort, ping=self._probe,
                               clock=self.loop.time)  # fmt: skip

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][LINK_KEY] = self.link

    def handle_ping(self) -> None:
        if not self.link.control_frame():
            self.conn.data_to_send()  # the pong websockets prepared is dropped, not queued
            return
        super().handle_ping()
        self._check_buffer()

    def handle_pong(self, event: Frame) -> None:
        payload = bytes(event.data)
        if self.link.pong(payload):
            return
        if payload != self.pending_ping_payload and not self.link.control_frame():
            return
        super().handle_pong(event)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.send" and not self.transport.is_closing():
            self.link.data_sent()
        self._check_buffer()

    def send_keepalive_ping(self) -> None:
        super().send_keepalive_ping()
        self._check_buffer()

    def _probe(self, payload: bytes) -> None:
        self.conn.send_ping(payload)
        self.transport.write(b"".join(self.conn.data_to_send()))

    def _check_buffer(self) -> None:
        size = self.transport.get_write_buffer_size()
        if size > self.settings.max_send_buffer_bytes and not self.link.aborted:
            log.warning("dropped a connection with %d bytes unsent: the client does not read",
                        size)  # fmt: skip
            self.link.abort()

    def _abort(self) -> None:
        self.transport.abort()


def protocol_classes(
    settings: LinkSettings,
) -> tuple[type[GatewayHttpProtocol], type[GatewayWebSocketProtocol]]:
    """The HTTP and WebSocket protocol classes for uvicorn (``http=``, ``ws=``), bound to
    ``settings``."""

    class Http(GatewayHttpProtocol):
        pass

    class WebSocket(GatewayWebSocketProtocol):
        pass

    Http.settings = WebSocket.settings = settings
    return Http, WebSocket
