"""The gateway's model of the client's playback clock (no I/O; times are passed in).

Audio reaches the client faster than real time. Assuming the client plays what it receives
at once, in real time, and waits when it runs out, the model tells how far playback has got,
how much audio is buffered ahead of it, and how often it ran dry. Progress reports it, and
the pacing and scheduling of synthesis can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PlaybackModel"]


@dataclass(slots=True)
class PlaybackModel:
    """Estimated playback position on the session timeline (samples at ``sample_rate``)."""

    sample_rate: int
    sent_end: int = 0
    underruns: int = 0
    _anchor_time: float | None = None  # when playback was at _anchor_position
    _anchor_position: int = 0
    _idle: bool = False

    @property
    def playing(self) -> bool:
        """Whether the client is playing (audio was sent since the start or the last stop)."""
        return self._anchor_time is not None

    @property
    def pausing(self) -> bool:
        """Whether the gateway has had nothing to send since its last audio (it waits for
        text): running dry now is a pause, not an underrun."""
        return self._idle

    def played(self, now: float) -> int:
        """Samples the client has played by ``now``."""
        if self._anchor_time is None:
            return self._anchor_position
        elapsed = max(0.0, now - self._anchor_time)
        return min(self.sent_end, self._anchor_position + int(elapsed * self.sample_rate))

    def buffered(self, now: float) -> int:
        """Samples received by the client and not yet played."""
        return self.sent_end - self.played(now)

    def sent(self, end: int, now: float) -> None:
        """Audio up to timeline position ``end`` has been sent at ``now``."""
        if end <= self.sent_end:
            return
        if self._anchor_time is None:
            self._anchor_time, self._anchor_position = now, self.sent_end
        elif self.played(now) >= self.sent_end:  # it ran dry before this audio came
            if not self._idle:
                self.underruns += 1
            self._anchor_time, self._anchor_position = now, self.sent_end
        self._idle = False
        self.sent_end = end

    def idle(self) -> None:
        """The gateway has nothing more to send for now (it waits for text): if the client
        runs dry before more audio comes, that is a pause, not an underrun."""
        self._idle = True

    def stopped(self) -> None:
        """The client stopped playback and dropped its buffer (a cancel): the next audio
        starts playback again."""
        self._anchor_time = None
        self._anchor_position = self.sent_end
