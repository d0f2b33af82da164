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

Sessions of one backend share its model, and a call cannot be interrupted once it runs: one
session's long call makes every other wait. :class:`ModelShare` knows how much audio each
session sharing the model has buffered, and :func:`fair_call_s` turns that into the longest call
any of them should make now.

No I/O, no clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "ModelShare",
    "SynthesisTimeModel",
    "call_budget_chars",
    "fair_call_s",
    "first_segment_chars",
    "merge_budget_chars",
    "part_end",
    "word_gap_end",
]

# A clause mark with a space after it (so not "3,000" or "http://"), or one that needs none.
_CLAUSE_GAP = re.compile(r"[,;:\u2013]\s+|[—、，；：]\s*")  # noqa: RUF001
_WORD_GAP = re.compile(r"\s+")


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
    return call_budget_chars(model, buffered_s - latency_target_s, highest=highest)


def call_budget_chars(model: SynthesisTimeModel, call_s: float, *, highest: int) -> int:
    """How many characters one call may take to be done within ``call_s`` (0: none)."""
    spare = call_s - model.fixed_s
    if spare <= 0:
        return 0
    return max(0, min(highest, int(spare / model.per_char_s)))


def fair_call_s(buffered_s: Iterable[float], margin_s: float, *, lanes: int = 1) -> float:
    """The longest call that keeps every listener supplied if each session sharing the model
    makes one call that long, the most urgent first, on ``lanes`` calls at once.

    With the sessions' buffered audio in ascending order ``b1 <= b2 <= ...``, the m-th most
    urgent one is served after ``ceil(m / lanes)`` calls, so each call may last at most
    ``(bm - margin_s) / ceil(m / lanes)``; the answer is the smallest of these. Listeners with
    no more than the margin left are left out: they are served first (their deadlines are the
    earliest) or have already run dry, and shrinking every call for them would only add fixed
    costs (on an overloaded model, making every listener late).
    """
    ordered = sorted(b for b in buffered_s if b > margin_s)
    if not ordered:
        return math.inf
    return min((b - margin_s) / -(-m // lanes) for m, b in enumerate(ordered, start=1))


class ModelShare:
    """The sessions that share one backend's model while they synthesize, each with a way to
    read how much audio its listener has buffered (None: it does not compete for calls now)."""

    def __init__(self, lanes: int = 1) -> None:
        self.lanes = lanes  # calls the model runs at once when busy
        self._members: dict[object, Callable[[], float | None]] = {}

    def join(self, member: object, buffered_s: Callable[[], float | None]) -> None:
        """``member`` synthesizes on the model from now on."""
        self._members[member] = buffered_s

    def leave(self, member: object) -> None:
        """``member`` no longer synthesizes (until it joins again)."""
        self._members.pop(member, None)

    def __len__(self) -> int:
        return len(self._members)

    def competing(self) -> int:
        """How many members compete for calls now."""
        return sum(1 for read in self._members.values() if read() is not None)

    def call_s(self, own_buffered_s: float, margin_s: float, *, member: object) -> float:
        """The longest call ``member`` (with ``own_buffered_s`` buffered) should make now:
        :func:`fair_call_s` over it and every other member that competes."""
        others = (read() for key, read in self._members.items() if key is not member)
        buffers = [own_buffered_s, *(b for b in others if b is not None)]
        return fair_call_s(buffers, margin_s, lanes=self.lanes)


def part_end(text: str, budget: int, *, min_chars: int) -> int:
    """Where the next synthesis call on ``text`` ends so that it takes about ``budget``
    characters: after the last clause mark within the budget, or, if there is none, after the
    first one beyond it (the shortest call that ends at a clause).

    A cut must leave at least ``min_chars`` non-space characters on both sides; without such a
    cut the call takes the whole text (``len(text)``). Never at a bare word gap: a model reads
    each call as an utterance, and a cut between two words sounds like a sentence end (and is
    heard as one).
    """
    if len(text) <= budget:
        return len(text)
    cuts = [m.end() for m in _CLAUSE_GAP.finditer(text)]
    fair = [cut for cut in cuts if _visible(text[:cut]) >= min_chars
            and _visible(text[cut:]) >= min_chars]  # fmt: skip
    within = [cut for cut in fair if cut <= budget]
    if within:
        return within[-1]
    return fair[0] if fair else len(text)


def word_gap_end(text: str, budget: int, *, min_chars: int, min_words: int = 1) -> int | None:
    """The last word gap of ``text`` within ``budget`` characters that leaves at least
    ``min_chars`` non-space characters and ``min_words`` words on both sides (the cut is after
    the gap), or None.

    For a call that cannot wait for a clause mark: a listener about to run dry hears a seam
    in the middle of a sentence instead of silence.
    """
    cuts = [m.end() for m in _WORD_GAP.finditer(text, 0, budget + 1)]
    fair = [cut for cut in cuts if cut <= budget
            and _visible(text[:cut]) >= min_chars and _visible(text[cut:]) >= min_chars
            and len(text[:cut].split()) >= min_words
            and len(text[cut:].split()) >= min_words]  # fmt: skip
    return fair[-1] if fair else None


def _visible(text: str) -> int:
    return sum(1 for char in text if not char.isspace())
