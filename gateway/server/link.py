"""What the gateway's connection protocols (:mod:`gateway.server.protocols`) tell the application
about one connection, through the ASGI scope (``scope["extensions"][LINK_KEY]``).

A :class:`Link` can drop its connection at once (a peer that does not read holds no memory and
no slot while a close waits to be flushed). A :class:`SocketLink` (WebSocket) also keeps the
session's message budget, shared by the data frames the session reads and the control frames the
protocol answers, and measures how far the client is behind in reading: the protocol pings
after data it sends, and a pong comes back only once the client has read everything before it.

Without the gateway's protocols (another ASGI server, a test client) there is no link:
:func:`link_of` returns None and the edges fall back to what ASGI offers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.config import Config
from gateway.core.ratelimit import TokenBucket

__all__ = ["LINK_KEY", "Link", "LinkSettings", "SocketLink", "link_of"]

LINK_KEY: Final = "tts_gateway.link"
_PROBE_PREFIX: Final = b"tgw-read-"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSettings:
    """The connection limits the protocols enforce (units in the names)."""

    max_connections: int
    header_timeout_s: float
    max_send_buffer_bytes: int
    messages_per_s: float
    message_burst: int
    probe_interval_s: float  # at most one read probe this often while data is sent

    @classmethod
    def from_config(cls, config: Config) -> LinkSettings:
        limits = config.limits
        return cls(
            max_connections=config.server.max_connections,
            header_timeout_s=config.server.header_timeout_s,
            max_send_buffer_bytes=limits.max_send_buffer_bytes,
            messages_per_s=limits.max_messages_per_s,
            message_burst=limits.max_message_burst,
            # Ten probes within the grace period: a client that stopped reading is seen
            # within a tenth of it.
            probe_interval_s=min(1.0, limits.slow_client_grace_s / 10),
        )


class Link:
    """One connection, as far as the application may act on it."""

    def __init__(self, abort: Callable[[], None]) -> None:
        self._abort = abort
        self.aborted = False

    def abort(self) -> None:
        """Drop the connection now, discarding whatever waits to be sent (no close handshake,
        no flush). Idempotent."""
        if not self.aborted:
            self.aborted = True
            self._abort()


class SocketLink(Link):
    """A WebSocket connection: its message budget and its read acknowledgements.

    ``ping``: sends a ping with a payload (the protocol's); ``clock``: the event loop's time.
    """

    def __init__(
        self,
        settings: LinkSettings,
        *,
        abort: Callable[[], None],
        ping: Callable[[bytes], None],
        clock: Callable[[], float],
    ) -> None:
        super().__init__(abort)
        self.rate = TokenBucket(settings.messages_per_s, settings.message_burst)
        self.flooded = False  # a control frame found the budget spent: the session must end
        self.on_flood: Callable[[], None] = lambda: None
        self._probe_interval_s = settings.probe_interval_s
        self._ping = ping
        self._clock = clock
        self._probes = itertools.count()
        self._probe: tuple[bytes, float] | None = None  # payload, sent at
        self._probed_at = -float("inf")

    def control_frame(self) -> bool:
        """A ping (or an unsolicited pong) arrived: it takes from the message budget. False
        when the budget is spent; the session is then told (``on_flood``) and the frame is not
        answered."""
        if self.rate.take(self._clock()):
            return True
        if not self.flooded:
            self.flooded = True
            self.on_flood()
        return False

    def data_sent(self) -> None:
        """A data frame went out: probe the client's reading if no probe is out and the last
        one was answered long enough ago."""
        now = self._clock()
        if self._probe is not None or now - self._probed_at < self._probe_interval_s:
            return
        payload = _PROBE_PREFIX + str(next(self._probes)).encode()
        self._probe, self._probed_at = (payload, now), now
        self._ping(payload)

    def pong(self, payload: bytes) -> bool:
        """A pong arrived; True if it answers the read probe (the client has read everything
        sent before the probe)."""
        if self._probe is None or payload != self._probe[0]:
            return payload.startswith(_PROBE_PREFIX)  # a stale probe: answered, nothing more
        self._probe = None
        return True

    def read_lag_s(self) -> float:
        """How long the client has left data unread: the age of the unanswered probe (0 when
        every probe has been answered)."""
        return 0.0 if self._probe is None else self._clock() - self._probe[1]


def link_of(scope: Mapping[str, Any]) -> Link | None:
    """The link the gateway's protocols put in an ASGI scope (None under another server)."""
    extensions = scope.get("extensions") or {}
    link = extensions.get(LINK_KEY)
    return link if isinstance(link, Link) else None
