"""How much text each backend call takes, and when each call is due: the one place where a
segment is cut into calls (adaptive chunking) and queued segments are joined into one.

Decisions, all on a :class:`~gateway.core.pacing.SynthesisTimeModel` of the backend and the
listener's buffered audio (the :class:`~gateway.core.playback.PlaybackModel`), with the time
from a :class:`~gateway.speech.clock.Clock`:

- a call takes what is ready before the listener runs dry, with the latency target to spare,
  and no more than its fair share of a model other sessions wait on; it ends at a clause mark
  (:func:`~gateway.core.pacing.part_end`), or, when the listener would run dry before the next
  clause mark could be ready, at a word gap (the rescue);
- never more than a backend's ``max_input_chars`` (a provider's limit), cut at the best
  boundary within it (:func:`limit_end`);
- queued segments are joined into one call while the joined text is ready in time;
- a call is due when its listener runs out of audio; a new turn's first call within the latency
  target (:meth:`CallPlanner.deadline`).

:func:`first_segment_rules` sizes a session's first segment the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Final

import numpy as np

from gateway.core.chunks import AudioChunk, WordTiming
from gateway.core.pacing import (
    ModelShare,
    SynthesisTimeModel,
    call_budget_chars,
    first_segment_chars,
    part_end,
    word_gap_end,
)
from gateway.core.playback import PlaybackModel
from gateway.core.segmenter import (
    Boundary,
    Segment,
    Segmenter,
    SegmenterConfig,
    TextPart,
    final_boundary,
)
from gateway.core.ssml import SegmentMarkup
from gateway.speech.clock import Clock
from gateway.speech.synthesis import DEFAULT_CALL, CallOptions

__all__ = ["CallPlanner", "first_segment_rules", "limit_end", "split_to_limit"]

# A segment is cut into backend calls only into parts this long or more (visible characters).
MIN_PART: Final = 8
# A cut at a word gap leaves at least this many words on each side: a model reads each call as
# an utterance, and two or three words alone come out as one (the call "eggs, and fresh" before
# "bread on your way home." was heard as "I eggs on fresh. Bread on your way home.").
MIN_WORD_GAP_WORDS: Final = 4
# A listener that has run dry is due this much later than its audio ran out: on an overloaded
# model the sessions still playing go first (earliest deadline first alone would serve the late
# ones and make every session late), yet none waits longer than that.
DRY_GRACE_S: Final = 2.0
_UNLIMITED: Final = 1 << 30


class CallPlanner:
    """Sizes and schedules one session's backend calls.

    ``timing`` gives the time model of the backend speaking now (None: adaptive chunking is
    off; every segment is one call, due at once); ``share`` the sessions sharing its model
    (None: not sized by them). ``playback`` is the session's listener.
    """

    def __init__(
        self,
        *,
        playback: PlaybackModel,
        clock: Clock,
        latency_target_s: float,
        max_merged_chars: int,
        timing: Callable[[], SynthesisTimeModel | None],
        share: Callable[[], ModelShare | None],
    ) -> None:
        self._playback = playback
        self._clock = clock
        self._latency_target_s = latency_target_s
        self._max_merged_chars = max_merged_chars
        self._timing = timing
        self._share = share

    # -- sizes -----------------------------------------------------------------------------------

    def call_end(self, rest: str, *, streams: bool, max_chars: int | None) -> int:
        """Where the next call on ``rest`` (the segment's text not yet synthesized) ends.

        A backend that ``streams`` within a call starts early whatever its length: it takes
        the whole rest, up to its ``max_chars``.
        """
        timing = self._timing()
        end = len(rest)
        if timing is not None and not streams:
            budget = max(call_budget_chars(timing, self._call_s(), highest=_UNLIMITED),
                         self._first_part_chars(timing))  # fmt: skip
            end = part_end(rest, budget, min_chars=MIN_PART)
            if end > budget:
                end = self._rescue_end(timing, rest, end)
        if max_chars is not None and end > max_chars:
            end = limit_end(rest[:end], max_chars)
        return end

    def merge_budget(self, *, streams: bool) -> int:
        """How much queued text the next call may take by joining segments (0: none). A
        backend that ``streams`` within a call starts as early whatever its length: it takes
        what is queued, up to ``max_merged_chars``."""
        timing = self._timing()
        if timing is None:
            return 0
        if streams:
            return self._max_merged_chars
        return call_budget_chars(timing, self._call_s(), highest=self._max_merged_chars)

    def _first_part_chars(self, timing: SynthesisTimeModel) -> int:
        """The characters one call can synthesize within the latency target (a first
        segment's length): the shortest part worth a call of its own."""
        return first_segment_chars(timing, self._latency_target_s,
                                   lowest=MIN_PART, highest=_UNLIMITED)  # fmt: skip

    def _rescue_end(self, timing: SynthesisTimeModel, text: str, end: int) -> int:
        """Where a call that found no clause mark within its budget ends: at ``end`` (the first
        clause mark beyond it), unless this playing listener would run dry (with the latency
        target to spare) before that much could be ready even if it started now; then at the
        last word gap that is ready in time (a seam in the middle of a sentence rather than
        silence), if both sides are at least a first segment and :data:`MIN_WORD_GAP_WORDS`
        long (shorter pieces cost more than they save, and are misheard)."""
        if not self._playback.playing:
            return end
        slack_s = self.buffered_s() - self._latency_target_s
        if timing.seconds(end) <= slack_s:
            return end
        in_time = call_budget_chars(timing, slack_s, highest=end)
        return word_gap_end(text, in_time, min_chars=self._first_part_chars(timing),
                            min_words=MIN_WORD_GAP_WORDS) or end  # fmt: skip

    def _call_s(self) -> float:
        """How long the next call may take: done before this listener's buffered audio runs
        out with the latency target to spare, and no longer than its fair share of a model
        other sessions are waiting on (:func:`~gateway.core.pacing.fair_call_s`)."""
        buffered_s = self.buffered_s()
        call_s = buffered_s - self._latency_target_s
        share = self._share()
        if share is not None and len(share) > 1:
            call_s = min(call_s, share.call_s(buffered_s, self._latency_target_s, member=self))
        return call_s

    # -- the listener ----------------------------------------------------------------------------

    def buffered_s(self) -> float:
        """Seconds of audio the listener holds unplayed now (the playback estimate)."""
        playback = self._playback
        return playback.buffered(self._clock.now()) / playback.sample_rate

    def competing_buffered_s(self) -> float:
        """This listener's buffered audio, for the other sessions sharing the model. Before
        playback has started, twice the latency target: its first call goes first, and right
        after it the listener holds little more than that."""
        if not self._playback.playing:
            return 2 * self._latency_target_s
        return self.buffered_s()

    # -- when ------------------------------------------------------------------------------------

    def deadline(self, segment: Segment) -> float:
        """When this session's listener runs out of audio. A new turn's first segment is due
        within the latency target (its listener is waiting for the first sound), and so is the
        next one after a pause for text; a listener that ran dry while the session had work
        goes after the ones still playing (:data:`DRY_GRACE_S`)."""
        now = self._clock.now()
        if segment.first_in_turn:
            return now + self._first_audio_due_s()
        due = now + self.buffered_s()
        if self._playback.playing and due <= now:
            if self._playback.pausing:  # it waited for text: as urgent as a first segment
                return now + self._first_audio_due_s()
            return due + DRY_GRACE_S
        return due

    def _first_audio_due_s(self) -> float:
        """How soon a new turn's first segment is due: at once without adaptive chunking, else
        within the latency target (listeners with less audio than that left go first)."""
        return 0.0 if self._timing() is None else self._latency_target_s


def first_segment_rules(
    rules: SegmenterConfig,
    *,
    timing: SynthesisTimeModel | None,
    latency_target_s: float,
    competing: int,
    short_first_segment: bool | None = None,
) -> SegmenterConfig:
    """The segmenting rules of a new session: ``rules``, with the first segment sized to the
    latency target when adaptive chunking is on (``timing`` set: the backend synthesizes a
    call whole before its first audio), and longer when ``competing`` sessions are playing on
    the same model: each makes the new one wait a call before its second segment, so its first
    one must last that much longer (and it waits for its turn anyway, so the longer first call
    costs little of its time to first audio). A first segment is cut at a clause mark, never at
    a bare word gap. For a backend that streams within a call, ``timing`` is None: the latency
    target is met by its first audio, and the first segment is a whole clause or sentence."""
    if short_first_segment is not None:
        rules = dataclasses.replace(rules, short_first_segment=short_first_segment)
    if timing is None:
        return rules
    first = first_segment_chars(timing, latency_target_s,
                                lowest=rules.first_segment_min_chars + 1,
                                highest=rules.first_segment_max_chars)  # fmt: skip
    first = min(rules.first_segment_max_chars, first * (1 + competing))
    return dataclasses.replace(rules, first_segment_max_chars=first)


def split_to_limit(text: str, max_chars: int) -> list[TextPart]:
    """Cut ``text`` into parts of at most ``max_chars`` code points, at the best boundaries.

    Sentences are kept together as far as the limit allows; a sentence longer than the limit
    is cut at a clause, then at a word gap (the segmenter's rules). Blank parts are dropped.
    """
    if len(text) <= max_chars:
        return [TextPart(0, len(text), final_boundary(text))] if text.strip() else []
    segmenter = Segmenter(
        SegmenterConfig(
            max_chars=max_chars,
            short_first_segment=False,
            first_segment_min_chars=1,
            first_segment_max_chars=max_chars,
        )
    )
    segments = [s for s in [*segmenter.push(text), *segmenter.finish()] if not s.blank]
    parts: list[TextPart] = []
    start = end = 0
    boundary = Boundary.WORD
    for segment in segments:
        if segment.end - start > max_chars and end > start:
            parts.append(TextPart(start, end, boundary))
            start = end
        end, boundary = segment.end, segment.boundary
    if end > start:
        parts.append(TextPart(start, end, boundary))
    return [part for part in parts if text[part.start : part.end].strip()]


def limit_end(text: str, max_chars: int) -> int:
    """Where the first call on ``text`` ends when a call may take ``max_chars`` at most."""
    parts = split_to_limit(text, max_chars)
    return parts[0].end if parts and parts[0].end < len(text) else len(text)


class MarkedCalls:
    """A segment's SSML markup as its calls see it (None: no markup): calls end at breaks
    and changes of rate, each break is a piece of silence, each call is read at its rate with
    the readings inside it."""

    def __init__(self, markup: SegmentMarkup | None) -> None:
        self._markup = markup
        self._breaks = dict(markup.breaks) if markup is not None else {}
        self._cuts = markup.cuts() if markup is not None else []

    def pause_at(self, offset: int) -> AudioChunk | None:
        """The break at ``offset`` (once), as a piece of no sound ending in its pause."""
        ms = self._breaks.pop(offset, None)
        if ms is None:
            return None
        return AudioChunk(np.zeros(0, dtype=np.float32), piece_end=Boundary.WORD, pause_ms=ms)

    def limit(self, offset: int, length: int) -> int:
        """``length`` cut to end at the next break or change of rate after ``offset``, and
        never inside an element read as a whole (``say-as`` content has spaces)."""
        end = offset + min([length, *(cut - offset for cut in self._cuts if cut > offset)])
        for reading in self._markup.readings if self._markup is not None else ():
            if reading.start < end < reading.end:
                end = reading.start if reading.start > offset else reading.end
        return end - offset

    def options(self, offset: int, length: int) -> CallOptions:
        """How the call on ``[offset, offset + length)`` reads."""
        markup = self._markup
        if markup is None:
            return DEFAULT_CALL
        return CallOptions(markup.rate_at(offset), markup.readings_in(offset, offset + length))


def shifted(chunk: AudioChunk, offset: int) -> AudioChunk:
    """``chunk`` of a call on the segment's text from ``offset`` on, with its words' character
    offsets made relative to the whole segment's text."""
    if not offset or not chunk.words:
        return chunk
    words = tuple(
        WordTiming(w.char_start + offset, w.char_end + offset, w.sample_start, w.sample_end,
                   w.spoken)
        for w in chunk.words
    )  # fmt: skip
    return dataclasses.replace(chunk, words=words)
