"""How much text to synthesize at once: small first, larger as the listener's buffer grows.

A backend's synthesis time is close to linear in the text's length plus a fixed cost per call:
``seconds ≈ fixed + per_char * chars``. :class:`SynthesisTimeModel` learns both from the
segments a backend has synthesized (recent ones weigh more). From it:

- :func:`first_segment_chars`: the longest first segment that is ready within the latency
  target, so sound starts early;
- :func:`merge_budget_chars`: how much queued text can go into one call while the listener
  still has audio to hear, so later calls grow (fewer calls, each with more context: better
  prosody, less fixed cost);
- :func:`part_end`: where to end a call on a segment too long to be ready before the listener
  runs dry (a long sentence right after a short first fragment), at a clause mark.

No I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SynthesisTimeModel", "first_segment_chars", "merge_budget_chars", "part_end"]

# A clause mark with a space after it (so not "3,000" or "http://"), or one that needs none.
_CLAUSE_GAP = re.compile(r"[,;:\u2013]\s+|[—、，；：]\s*")  # noqa: RUF001


@dataclass(slots=True)
class SynthesisTimeModel:
    """``seconds ≈ fixed_s + per_char_s * chars``, fitted by exponentially weighted least
    squares over observed calls (``decay`` per observation), starting from a prior."""

    fixed_s: float = 0.2
    per_char_s: float = 0.01
    decay: float = 0.9
    _n: float = 0.0
    _sx: float = 0.0
    _sy: float = 0.0
    _sxx: float = 0.0
    _sxy: float = 0.0

    def observe(self, chars: int, seconds: float) -> None:
        """One call: ``chars`` characters took ``seconds``."""
        if chars <= 0 or seconds <= 0:
            return
        d = self.decay
        self._n = self._n * d + 1
        self._sx = self._sx * d + chars
        self._sy = self._sy * d + seconds
        self._sxx = self._sxx * d + chars * chars
        self._sxy = self._sxy * d + chars * seconds
        spread = self._n * self._sxx - self._sx * self._sx
        if self._n >= 2 and spread > 1e-9 * max(1.0, self._sxx):
            slope = (self._n * self._sxy - self._sx * self._sy) / spread
            intercept = (self._sy - slope * self._sx) / self._n
            if slope > 0 and intercept >= 0:
                self.per_char_s, self.fixed_s = slope, intercept
                return
        # Too few or too similar lengths to separate the two: keep the fixed cost, fit the rate.
        self.per_char_s = max(1e-6, (self._sy - self.fixed_s * self._n) / max(self._sx, 1.0))

    def seconds(self, chars: int) -> float:
        """Expected synthesis time of ``chars`` characters in one call."""
        return self.fixed_s + self.per_char_s * chars


def first_segment_chars(
    model: SynthesisTimeModel, latency_target_s: float, *, lowest: int, highest: int
) -> int:
    """The longest first segment ready within ``latency_target_s``, in ``[lowest, highest]``."""
    chars = int((latency_target_s - model.fixed_s) / model.per_char_s)
    return max(lowest, min(highest, chars))


def merge_budget_chars(
    model: SynthesisTimeModel, buffered_s: float, latency_target_s: float, *, highest: int
) -> int:
    """How many characters one call may take so that it is done before the listener's
    ``buffered_s`` of audio runs out, keeping ``latency_target_s`` to spare (0: no merging)."""
    spare = buffered_s - latency_target_s - model.fixed_s
    if spare <= 0:
        return 0
    return max(0, min(highest, int(spare / model.per_char_s)))


def part_end(text: str, budget: int, *, min_chars: int) -> int:
    """Where the next synthesis call on ``text`` ends so that it takes at most ``budget``
    characters: after the last clause mark within the budget.

    ``len(text)`` (one call) when the text fits, or when no clause mark within the budget leaves
    at least ``min_chars`` non-space characters on both sides. Never at a bare word gap: a
    model reads each call as an utterance, and a cut between two words sounds like a sentence
    end (and is heard as one).
    """
    if len(text) <= budget:
        return len(text)
    cuts = [m.end() for m in _CLAUSE_GAP.finditer(text, 0, budget + 1) if m.end() <= budget]
    for cut in reversed(cuts):
        if _visible(text[:cut]) < min_chars:
            break
        if _visible(text[cut:]) >= min_chars:
            return cut
    return len(text)


def _visible(text: str) -> int:
    return sum(1 for char in text if not char.isspace())
