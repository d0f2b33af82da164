"""Whether the gateway keeps up: which sessions are speaking, and which of them let their
listener run dry while they had work (no I/O; times are passed in).

Every session reports each frame it sends and whether its modelled listener had run out of
audio before it (an underrun, :class:`~gateway.core.playback.PlaybackModel`). When many sessions
share too few cores, their listeners all run dry together; the gateway's verdict on it
(``Gateway.saturated``) is taken from the :class:`Load` this reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["Load", "LoadMonitor"]

# How far back a frame or a stall counts.
RECENT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Load:
    """Sessions that sent audio within the window, and those of them whose listener ran dry."""

    speaking: int
    stalled: int


class LoadMonitor:
    """The recent frames and stalls of every session of a process (keyed by any hashable)."""

    def __init__(self, recent_s: float = RECENT_S) -> None:
        self._recent_s = recent_s
        self._last_frame: dict[object, float] = {}
        self._last_stall: dict[object, float] = {}

    def frame(self, session: object, now: float, *, stalled: bool) -> None:
        """``session`` sent a frame at ``now``; ``stalled``: its listener had run dry first."""
        self._last_frame[session] = now
        if stalled:
            self._last_stall[session] = now

    def load(self, now: float) -> Load:
        """The sessions speaking and stalled within the window before ``now`` (older entries
        are forgotten, so sessions that ended drop out)."""
        since = now - self._recent_s
        for old in [s for s, at in self._last_frame.items() if at < since]:
            del self._last_frame[old]
        for old in [s for s, at in self._last_stall.items() if at < since]:
            del self._last_stall[old]
        return Load(speaking=len(self._last_frame), stalled=len(self._last_stall))
