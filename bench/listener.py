"""A simulated listener: plays a session's audio in real time from its first frame.

Audio frames carry their position on the session timeline (``sample_start``). The listener
starts playing when the first frame arrives and plays at the stream rate; a frame that arrives
later than its turn (by more than ``tolerance_s``, a small jitter buffer) is an underrun: the
listener heard silence, waits for it, and plays on from there. No clock and no I/O: arrival
times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TOLERANCE_S", "Listener"]

# A browser's or a phone's jitter buffer holds at least this much; later than that is heard.
DEFAULT_TOLERANCE_S = 0.05


@dataclass(slots=True)
class Listener:
    """Real-time playback of one session, fed with each frame's arrival."""

    sample_rate: int
    tolerance_s: float = DEFAULT_TOLERANCE_S
    underruns: int = 0
    stall_s: float = 0.0  # silence heard in all, from the underruns
    frames: int = 0
    _origin: float | None = None  # when timeline sample 0 is (was) played

    def arrive(self, at: float, sample_start: int) -> float:
        """A frame starting at ``sample_start`` arrived at ``at``; returns how late it was
        (seconds past its turn, 0 if on time or within the tolerance)."""
        self.frames += 1
        offset = sample_start / self.sample_rate
        if self._origin is None:
            self._origin = at - offset
            return 0.0
        late = at - (self._origin + offset)
        if late <= self.tolerance_s:
            return 0.0
        self.underruns += 1
        self.stall_s += late
        self._origin += late  # playback resumes with this frame
        return late

    @property
    def clean(self) -> bool:
        """Whether it played without running dry (and heard anything at all)."""
        return self.frames > 0 and self.underruns == 0
