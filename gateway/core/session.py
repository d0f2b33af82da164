"""The session state machine: text in, ordered work out, every character accounted for.

No I/O and no clocks. The WebSocket edge feeds it the client's messages and asks it for work;
it decides what is legal in which state, cuts text into segments, queues segments and flush/end
marks in order, and keeps the books: every accepted character ends up spoken or reported
unspoken.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import deque
from dataclasses import dataclass, field

from gateway.core.protocol import ErrorCode, ProtocolError
from gateway.core.segmenter import Segment, Segmenter, SegmenterConfig
from gateway.core.ssml import MarkupScanner, SegmentMarkup

__all__ = [
    "CancelOutcome",
    "EndMark",
    "FlushMark",
    "ReleasedBy",
    "Session",
    "SessionState",
    "SpeakSegment",
    "Work",
]


class SessionState(enum.Enum):
    AWAITING_START = "awaiting_start"
    STREAMING = "streaming"
    ENDING = "ending"  # ``end`` received; finishing the queued work
    CLOSED = "closed"


class ReleasedBy(enum.StrEnum):
    """What made the segmenter release a segment."""

    TEXT = "text"
    FLUSH = "flush"
    END = "end"
    IDLE = "idle"


@dataclass(frozen=True, slots=True)
class SpeakSegment:
    """Work: speak one segment. ``index`` counts segments in the session from 0."""

    index: int
    segment: Segment
    released_by: ReleasedBy
    received_chars: int


@dataclass(frozen=True, slots=True)
class FlushMark:
    """Work: push out all audio so far, then answer the flush."""

    id: int | str | None


@dataclass(frozen=True, slots=True)
class EndMark:
    """Work: push out all audio, send the final metrics and close."""


Work = SpeakSegment | FlushMark | EndMark


@dataclass(frozen=True, slots=True)
class Heard:
    """What the listener heard of the current turn, cut after the last word that ended.

    ``heard_text`` is the text ``[heard_start, cut)`` (``heard_start`` is the turn's start, or
    later if the turn is longer than the retained text), ``unheard_text`` is ``[cut, received)``.
    """

    cut: int
    heard_start: int
    heard_text: str
    unheard_text: str


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What a cancel dropped (the unspoken text, the flushes left unanswered) and what the
    listener heard."""

    unspoken_start: int
    unspoken_end: int
    unspoken_text: str
    heard: Heard
    dropped_flushes: list[int | str | None] = field(default_factory=list)


class Session:
    """One client's text stream (pure state; the I/O edge owns the tasks).

    The work queue is bounded: segments by ``max_pending_chars`` (text beyond it is refused),
    flush marks by ``max_pending_flushes``.
    """

    def __init__(
        self,
        segmenter: SegmenterConfig,
        *,
        max_pending_chars: int,
        max_pending_flushes: int,
        max_heard_chars: int = 100_000,
    ) -> None:
        self.state = SessionState.AWAITING_START
        self._segmenter = Segmenter(segmenter)
        self._max_pending = max_pending_chars
        self._max_flushes = max_pending_flushes
        self._queue: deque[Work] = deque()
        self._current: SpeakSegment | FlushMark | None = None  # taken, not yet completed
        self._segments = 0
        # Text from the first unsettled character on, so a cancel can report what it drops.
        self._unsettled = ""
        self._settled_end = 0
        self.chars_spoken = 0
        self.chars_unspoken = 0
        # What was heard: text of the current turn (the last max_heard_chars of it) and points
        # (timeline sample, character) where playback passes the end of a word or segment.
        self._max_heard = max_heard_chars
        self._turn_text = ""
        self._turn_text_start = 0
        self._marks: deque[tuple[int, int]] = deque()
        self._markup: MarkupScanner | None = None  # the text is SSML (start.ssml)

    # -- the client's messages ----------------------------------------------------------------

    def begin(self, segmenter: SegmenterConfig | None = None, *, ssml: bool = False) -> None:
        """A valid ``start`` arrived; ``segmenter`` replaces the default segmenting rules;
        with ``ssml`` the text is read as SSML (:mod:`gateway.core.ssml`)."""
        if self.state is not SessionState.AWAITING_START:
            raise ProtocolError(ErrorCode.ALREADY_STARTED, "the session has already started")
        if segmenter is not None:
            self._segmenter = Segmenter(segmenter)
        self._markup = MarkupScanner() if ssml else None
        self.state = SessionState.STREAMING

    def accept_text(self, text: str) -> None:
        """Take more text; raises (and accepts none of it) if it is not allowed now."""
        self._require_streaming("text")
        pending = self.received - self._settled_end
        if pending + len(text) > self._max_pending:
            raise ProtocolError(
                ErrorCode.PENDING_TEXT_LIMIT,
                f"text of {len(text)} characters refused: {pending} characters are waiting to be "
                f"spoken and the limit is {self._max_pending}; the session is closed",
                fatal=True,
            )
        # Malformed markup refuses the whole text (invalid_ssml) before anything is accepted.
        segmented = self._markup.feed(text) if self._markup is not None else text
        self._unsettled += text
        self._turn_text += text
        if len(self._turn_text) > self._max_heard:
            dropped = len(self._turn_text) - self._max_heard
            self._turn_text = self._turn_text[dropped:]
            self._turn_text_start += dropped
            while self._marks and self._marks[0][1] < self._turn_text_start:
                self._marks.popleft()
        self._enqueue(self._segmenter.push(segmented), ReleasedBy.TEXT)

    def request_flush(self, request_id: int | str | None) -> None:
        """Speak everything buffered now; the flush is answered after its audio."""
        self._require_streaming("flush")
        waiting = sum(isinstance(work, FlushMark) for work in self._queue)
        if waiting >= self._max_flushes:
            raise ProtocolError(
                ErrorCode.PENDING_TEXT_LIMIT,
                f"{waiting} flushes are already waiting for their audio; the session is closed",
                fatal=True,
            )
        self._enqueue(self._segmenter.flush(), ReleasedBy.FLUSH)
        self._queue.append(FlushMark(request_id))

    def request_end(self) -> None:
        """No more text: speak the rest, then finish. With SSML, an unfinished tag refuses
        the end (``invalid_ssml``); elements still open end with the text."""
        self._require_streaming("end")
        if self._markup is not None:
            self._markup.finish()
        self._enqueue(self._segmenter.finish(), ReleasedBy.END)
        self._queue.append(EndMark())
        self.state = SessionState.ENDING

    def release_idle(self) -> None:
        """No text arrived for a while: speak the buffered text instead of waiting for more."""
        if self.state is SessionState.STREAMING:
            self._enqueue(self._segmenter.flush(), ReleasedBy.IDLE)

    def cancel(self, position: int) -> CancelOutcome:
        """Barge-in: drop the segment being spoken, the queue and the buffered text.

        ``position`` is the listener's playback position on the timeline. The caller must have
        stopped the speaking of the current segment first. A new turn starts.
        """
        if self.state is SessionState.AWAITING_START:
            raise ProtocolError(ErrorCode.NOT_STARTED, "cancel before start: nothing to cancel")
        dropped = [work.id for work in (self._current, *self._queue) if isinstance(work, FlushMark)]
        ends = [work for work in self._queue if isinstance(work, EndMark)]
        self._queue.clear()
        self._queue.extend(ends)  # a cancel drops text, not the client's request to finish
        self._current = None
        self._segmenter.reset()
        if self._markup is not None:
            self._markup.reset()
        outcome = CancelOutcome(
            self._settled_end,
            self.received,
            self._unsettled,
            self.heard(position),
            dropped_flushes=dropped,
        )
        self._settle(self.received, spoken=False)
        self._turn_text, self._turn_text_start = "", self.received
        self._marks.clear()
        return outcome

    def mark_heard(self, sample_end: int, char_end: int) -> None:
        """Once playback passes ``sample_end``, the text up to ``char_end`` has been heard."""
        if char_end >= self._turn_text_start:
            self._marks.append((sample_end, char_end))

    def forget_heard_from(self, char_start: int) -> None:
        """Drop the marks past ``char_start`` (newer timings of those words follow)."""
        while self._marks and self._marks[-1][1] > char_start:
            self._marks.pop()

    def heard(self, position: int) -> Heard:
        """What of the current turn was heard when playback is at ``position``."""
        cut = self._turn_text_start
        for sample_end, char_end in self._marks:
            if sample_end <= position:
                cut = max(cut, char_end)
        split = cut - self._turn_text_start
        return Heard(cut, self._turn_text_start, self._turn_text[:split], self._turn_text[split:])

    def heard_everything(self) -> Heard:
        """The turn as heard at its normal end: all of it."""
        return Heard(self.received, self._turn_text_start, self._turn_text, "")

    # -- the speaker's side -------------------------------------------------------------------

    @property
    def has_work(self) -> bool:
        return bool(self._queue)

    def next_work(self, *, merge_chars: int = 0) -> Work | None:
        """The next thing to do, in order; it is the current work until completed.

        With ``merge_chars``, segments queued right behind a segment are joined to it (one
        synthesis call, more context) while the joined text stays within ``merge_chars``; a
        flush, the end, or a turn's first segment is never crossed.
        """
        if not self._queue:
            return None
        work = self._queue.popleft()
        if isinstance(work, SpeakSegment):
            work = self._merged(work, merge_chars)
        if not isinstance(work, EndMark):
            self._current = work
        return work

    def _merged(self, work: SpeakSegment, merge_chars: int) -> SpeakSegment:
        segment = work.segment
        while self._queue and not segment.first_in_turn:
            following = self._queue[0]
            if not isinstance(following, SpeakSegment) or following.segment.first_in_turn:
                break
            if following.segment.end - segment.start > merge_chars:
                break
            self._queue.popleft()
            nxt = following.segment
            segment = Segment(segment.start, nxt.end, segment.text + nxt.text, nxt.boundary,
                              first_in_turn=False)  # fmt: skip
            # The joined segment is complete once its last part is: that part's release
            # (so `received_chars` never falls short of `char_end`).
            work = dataclasses.replace(work, segment=segment, released_by=following.released_by,
                                       received_chars=following.received_chars)  # fmt: skip
        return work

    def segment_finished(self, work: SpeakSegment, *, spoken: bool) -> None:
        """The current segment's audio is all out (``spoken``) or it failed (unspoken)."""
        if self._current is not work:
            return  # cancelled meanwhile; the cancel already settled it
        self._current = None
        self._settle(work.segment.end, spoken=spoken)

    def segment_failed(self, work: SpeakSegment) -> None:
        """The current segment failed and is about to be reported unspoken (an ``error`` with
        its range): settle it now, so a cancel that comes before :meth:`segment_finished`
        does not report it a second time."""
        if self._current is work:
            self._settle(work.segment.end, spoken=False)

    def flush_answered(self, mark: FlushMark) -> None:
        """The flush's audio is out and it has been answered."""
        if self._current is mark:
            self._current = None

    def close(self) -> None:
        self.state = SessionState.CLOSED

    # -- books ------------------------------------------------------------------------------

    @property
    def received(self) -> int:
        """Characters accepted since the session started (offsets are into this text)."""
        return self._segmenter.received

    def unsettled_range(self) -> tuple[int, int]:
        """The accepted characters neither spoken nor reported unspoken yet."""
        return self._settled_end, self.received

    @property
    def segments_released(self) -> int:
        """Segments released so far (blank ones included)."""
        return self._segments

    @property
    def buffered_text(self) -> str:
        """The text waiting in the segmenter for more to come (not released yet)."""
        return self._segmenter.pending_text

    @property
    def has_pending_text(self) -> bool:
        """Whether text that is not blank waits in the segmenter for more to come."""
        return bool(self._segmenter.pending_text.strip())

    @property
    def pending_chars(self) -> int:
        """Accepted characters neither spoken nor reported unspoken yet."""
        return self.received - self._settled_end

    def _settle(self, end: int, *, spoken: bool) -> None:
        count = end - self._settled_end
        if count <= 0:
            return
        if spoken:
            self.chars_spoken += count
        else:
            self.chars_unspoken += count
        self._unsettled = self._unsettled[count:]
        self._settled_end = end
        if self._markup is not None:
            self._markup.forget_before(end)

    def markup(self, segment: Segment) -> SegmentMarkup | None:
        """The SSML markup of an unsettled segment (None: the text is not SSML)."""
        if self._markup is None:
            return None
        return self._markup.markup(segment.start, segment.end, segment.text)

    def _enqueue(self, segments: list[Segment], released_by: ReleasedBy) -> None:
        # Bounded without a check here: queued segments hold pending characters (each at least
        # one), and accept_text keeps those under max_pending_chars.
        for segment in segments:
            if self._markup is not None:  # the segmenter saw the mask: the client's text
                start = segment.start - self._settled_end
                text = self._unsettled[start : start + len(segment.text)]
                segment = dataclasses.replace(segment, text=text)
            self._queue.append(SpeakSegment(self._segments, segment, released_by, self.received))
            self._segments += 1

    def _require_streaming(self, what: str) -> None:
        if self.state is SessionState.AWAITING_START:
            raise ProtocolError(ErrorCode.NOT_STARTED, f"{what!r} before 'start': send start first")
        if self.state is not SessionState.STREAMING:
            raise ProtocolError(ErrorCode.ENDED, f"{what!r} after 'end': the session is finishing")
