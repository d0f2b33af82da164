"""Per-session measurements, fed with clock readings by the I/O edge (no clock in here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SessionMetrics"]


@dataclass(slots=True)
class SessionMetrics:
    """Counters and timestamps (seconds on one monotonic clock) for one session."""

    sample_rate: int
    started_at: float
    first_release_at: float | None = None
    first_audio_at: float | None = None
    frames_sent: int = 0
    bytes_sent: int = 0
    segments_spoken: int = 0
    segments_failed: int = 0
    synthesis_s: float = 0.0
    speech_samples: int = 0

    def segment_released(self, now: float) -> None:
        if self.first_release_at is None:
            self.first_release_at = now

    def frame_sent(self, size: int, now: float) -> None:
        if self.first_audio_at is None:
            self.first_audio_at = now
        self.frames_sent += 1
        self.bytes_sent += size

    def segment_synthesized(self, seconds: float, samples: int, *, ok: bool) -> None:
        self.synthesis_s += seconds
        self.speech_samples += samples
        if ok:
            self.segments_spoken += 1
        else:
            self.segments_failed += 1

    @property
    def time_to_first_audio_ms(self) -> float | None:
        """From the first segment's release to its first audio frame leaving the gateway."""
        if self.first_release_at is None or self.first_audio_at is None:
            return None
        return (self.first_audio_at - self.first_release_at) * 1000

    def summary(
        self, *, now: float, timeline_samples: int, chars: dict[str, int]
    ) -> dict[str, Any]:
        """The metrics sent in ``done``."""
        audio_s = timeline_samples / self.sample_rate
        speech_s = self.speech_samples / self.sample_rate
        return {
            **chars,
            "segments": self.segments_spoken,
            "segments_failed": self.segments_failed,
            "audio_ms": round(audio_s * 1000, 1),
            "frames": self.frames_sent,
            "bytes": self.bytes_sent,
            "time_to_first_audio_ms": _rounded(self.time_to_first_audio_ms),
            "synthesis_ms": round(self.synthesis_s * 1000, 1),
            "real_time_factor": round(self.synthesis_s / speech_s, 4) if speech_s else None,
            "session_ms": round((now - self.started_at) * 1000, 1),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
