"""Incremental sentence and clause segmentation of streamed text, without I/O.

Clients stream text in arbitrary fragments (LLM tokens cut mid-word, mid-number, mid-URL). The
:class:`Segmenter` releases a segment as soon as it is certain to be complete, normally on the
first character after the terminal punctuation, and everything else on :meth:`Segmenter.flush`
or :meth:`Segmenter.finish`.

Every decision depends only on the text, never on where the fragments were cut: a rule that
needs a character that has not arrived yet waits for it. Segments are contiguous and cover the
text; the whitespace between two sentences starts the next segment, because a sentence is
released before it is known how much whitespace follows it.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

__all__ = ["Boundary", "Segment", "Segmenter", "SegmenterConfig", "TextPart", "final_boundary"]


class Boundary(enum.StrEnum):
    """Why a segment ended."""

    SENTENCE = "sentence"  # terminal punctuation (and closing quotes/brackets after it)
    CLAUSE = "clause"  # clause punctuation: the short first segment, or a split long run
    LINE = "line"  # a line break follows
    WORD = "word"  # a word gap: a split long run, or flushed text that ends mid-sentence
    HARD = "hard"  # a cut inside an unbroken run longer than the limit


@dataclass(frozen=True, slots=True)
class Segment:
    """A released piece of the stream.

    ``start`` and ``end`` (exclusive) are offsets in code points into all the text pushed since
    the segmenter was built; ``text`` is exactly that text, leading whitespace included.
    ``first_in_turn`` marks the first segment since construction, the last flush or reset.
    """

    start: int
    end: int
    text: str
    boundary: Boundary
    first_in_turn: bool

    @property
    def blank(self) -> bool:
        """True when the text is only whitespace.

        Only the last segment of finish() can be blank, or a stretch of whitespace longer than
        the limit (``max_chars`` wins over non-blankness).
        """
        return not self.text.strip()


@dataclass(frozen=True, slots=True)
class TextPart:
    """``text[start:end]`` of a longer text (one backend call's text), ending at ``boundary``."""

    start: int
    end: int
    boundary: Boundary


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmenterConfig:
    """Segment length limits, in code points.

    ``max_chars`` bounds every segment. With ``short_first_segment`` the first segment of a
    turn may also end at a clause boundary once it has ``first_segment_min_chars`` non-space
    characters, or at the last clause mark within ``first_segment_max_chars``, so that speech
    starts sooner; never at a bare word gap (without a clause mark in time the first segment
    runs to its sentence's end, as any segment).
    """

    max_chars: int = 300
    short_first_segment: bool = True
    first_segment_min_chars: int = 10
    first_segment_max_chars: int = 100

    def __post_init__(self) -> None:
        for name in ("max_chars", "first_segment_min_chars", "first_segment_max_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if not isinstance(self.short_first_segment, bool):
            raise ValueError(
                f"short_first_segment: must be a bool, got {self.short_first_segment!r}"
            )
        if self.first_segment_min_chars >= self.first_segment_max_chars:
            raise ValueError(
                "first_segment_min_chars: must be below first_segment_max_chars "
                f"({self.first_segment_min_chars} >= {self.first_segment_max_chars})"
            )
        if self.first_segment_max_chars > self.max_chars:
            raise ValueError(
                "first_segment_max_chars: must not exceed max_chars "
                f"({self.first_segment_max_chars} > {self.max_chars})"
            )


# -- character classes -------------------------------------------------------------------------

# Fullwidth and typographic characters are meant here, hence the noqa: RUF001.
_CJK_TERMINALS = frozenset("。！？")  # noqa: RUF001
_TERMINALS = frozenset(".!?…‼⁉") | _CJK_TERMINALS
_CLOSERS = frozenset("\"'”’»)]}」』）】")  # noqa: RUF001
_OPENERS = frozenset("\"'“‘«([{「『（【")  # noqa: RUF001
_EN_DASH = "\u2013"
# Clause marks that end a clause even without whitespace after them: em dash and CJK marks.
_UNSPACED_CLAUSE_MARKS = frozenset("—、，；：")  # noqa: RUF001
_CLAUSE_MARKS = frozenset(",;:") | {_EN_DASH} | _UNSPACED_CLAUSE_MARKS
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
# A word right after one of these is part of a URL, path or email, not an abbreviation.
_URL_CHARS = frozenset("/\\@:_=&#%+~")
_ZERO_WIDTH_JOINER = "\u200d"

# Lowercased words that never end a sentence when followed by ".".
_ALWAYS_CONTINUE = frozenset(
    """mr mrs ms mx dr prof sr jr st mt vs e.g i.e cf approx ca viz esp incl fig figs vol vols
    lt col gen capt sgt cpl pvt maj cmdr adm rev hon gov sen rep pres supt messrs dept ave blvd
    """.split()  # noqa: SIM905 - a word list reads better as text
)
# Lowercased words that end a sentence only if a capital letter (or a line end) follows.
# Dotted acronyms (U.S.A., a.m., Ph.D.) are in this class too, see _is_dotted_acronym.
_MAYBE_TERMINAL = frozenset(
    """etc inc ltd co corp llc plc bros no nos al jan feb mar apr jun jul aug sep sept oct nov
    dec min hr hrs sec
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_MAX_WORD = 16  # longer words are neither abbreviations nor list numbers
_LOOK_BEHIND = 32  # released characters kept for look-behind (longer than _MAX_WORD)
# A gap this long after a maybe-terminal period or an ellipsis counts as the end of the text,
# which keeps the buffer bounded however much whitespace a client sends.
_MAX_GAP = 64


# -- scanner results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cut:
    """The current segment ends before pending index ``end``."""

    end: int
    boundary: Boundary


class _Verdict(enum.Enum):
    END = enum.auto()  # the segment ends at the mark's cut
    GO_ON = enum.auto()  # not a boundary: scanning resumes at the cut
    WAIT = enum.auto()  # undecided until more text arrives


@dataclass(frozen=True, slots=True)
class _Mark:
    """The judgement of a punctuation run; ``cut`` is where a segment would end.

    For WAIT, ``cut`` is a lower bound (the run may go on in text not yet received).
    """

    verdict: _Verdict
    cut: int
    boundary: Boundary = Boundary.SENTENCE  # for END


class _Abbrev(enum.Enum):
    NONE = enum.auto()
    CONTINUE = enum.auto()
    MAYBE_TERMINAL = enum.auto()


# -- the segmenter -----------------------------------------------------------------------------


class Segmenter:
    """Cuts a stream of text fragments into speakable segments (one owner; not thread-safe).

    Call :meth:`push` with each fragment and speak every segment returned, in order;
    :meth:`flush` releases what is pending, :meth:`finish` ends the input, :meth:`reset`
    drops the pending text on a barge-in.
    """

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        self._config = config if config is not None else SegmenterConfig()
        self._pending = ""  # pushed, not yet released
        self._pending_start = 0
        self._first_in_turn = True
        self._finished = False
        # Every mark and line break before this pending index has been judged not to end the
        # segment, so the next push resumes there instead of rescanning.
        self._scan_from = 0
        # The tail of the released text, for look-behind across a cut, and whether the text
        # before _behind[0] is only whitespace since the last line break (or the start).
        self._behind = ""
        self._behind_at_line_start = True

    # -- public API -----------------------------------------------------------------------------

    @property
    def config(self) -> SegmenterConfig:
        """The limits this segmenter applies."""
        return self._config

    @property
    def pending_start(self) -> int:
        """Stream offset of the first character not released yet."""
        return self._pending_start

    @property
    def pending_text(self) -> str:
        """The text pushed but not released yet."""
        return self._pending

    @property
    def received(self) -> int:
        """Code points pushed since construction (including any dropped by reset())."""
        return self._pending_start + len(self._pending)

    @property
    def first_in_turn(self) -> bool:
        """Whether the next segment released will be the first of a turn."""
        return self._first_in_turn

    @property
    def finished(self) -> bool:
        """Whether finish() has been called; push() then raises."""
        return self._finished

    def push(self, fragment: str) -> list[Segment]:
        """Add text; return the segments now certain to be complete, in order.

        Raises RuntimeError after finish().
        """
        if self._finished:
            raise RuntimeError("push() after finish(): the input has ended")
        if not fragment:
            return []
        self._pending += fragment
        released = []
        while (cut := self._next_cut(eof=False)) is not None:
            released.append(self._release(cut))
        return released

    def flush(self) -> list[Segment]:
        """Release all pending text that is not blank, each segment within the limit.

        Trailing whitespace stays pending as the start of the next segment. The next segment
        starts a new turn.
        """
        released = self._drain(final=False)
        self._start_turn()
        return released

    def finish(self) -> list[Segment]:
        """End of input: like flush(), and pending whitespace becomes a last, blank segment.

        The segments released since construction then cover the whole text (except ranges
        dropped by reset()). Later calls of flush() and finish() return nothing.
        """
        released = self._drain(final=True)
        self._start_turn()
        self._finished = True
        return released

    def reset(self) -> tuple[int, int]:
        """Barge-in: drop the pending text and return its (start, end) stream range.

        The next segment starts a new turn, and text pushed later is judged as if it began a
        new text (a number at its start is a list marker, for instance).
        """
        dropped = (self._pending_start, self.received)
        self._pending_start = self.received
        self._pending = ""
        self._behind = ""
        self._behind_at_line_start = True
        self._start_turn()
        return dropped

    # -- releasing ------------------------------------------------------------------------------

    def _drain(self, *, final: bool) -> list[Segment]:
        released = []
        while self._pending and (final or not self._pending.isspace()):
            cut = self._next_cut(eof=True) or self._rest_cut(final=final)
            released.append(self._release(cut))
        return released

    def _rest_cut(self, *, final: bool) -> _Cut:
        """At the end of the input: the non-blank rest without its trailing whitespace, or
        (when final) the blank rest."""
        text = self._pending
        end = len(text) if final and text.isspace() else len(text.rstrip())
        return _Cut(end, _classify(text[:end]))

    def _release(self, cut: _Cut) -> Segment:
        text = self._pending[: cut.end]
        start = self._pending_start
        segment = Segment(start, start + cut.end, text, cut.boundary, self._first_in_turn)
        self._pending = self._pending[cut.end :]
        self._pending_start += cut.end
        self._first_in_turn = False
        self._scan_from = 0
        self._remember(text)
        return segment

    def _remember(self, released: str) -> None:
        kept = self._behind + released
        excess = len(kept) - _LOOK_BEHIND
        if excess > 0:
            self._behind_at_line_start = _line_start_after(
                kept[:excess], self._behind_at_line_start
            )
            kept = kept[excess:]
        self._behind = kept

    def _start_turn(self) -> None:
        self._first_in_turn = True
        self._scan_from = 0

    def _limit(self) -> int:
        config = self._config
        if self._first_in_turn and config.short_first_segment:
            return config.first_segment_max_chars
        return config.max_chars

    # -- the scanner ----------------------------------------------------------------------------

    def _next_cut(self, *, eof: bool) -> _Cut | None:
        """Where the current segment ends, or None if that is not certain yet.

        ``eof``: no more text follows the pending text (flush or finish).
        """
        text = self._pending
        limit = self._limit()
        i = self._scan_from
        while i < len(text):
            if i > limit:
                if (cut := self._outgrown(limit)) is not None:
                    return cut
                # The mark at the old limit was passed over (it would have made the segment
                # one character too long): judge it again under the new limit.
                i, limit = min(i, limit), self._config.max_chars
                continue
            if text[i] in _LINE_BREAKS:
                if _has_content(text, i):
                    # Whitespace before the break goes with it, as after a sentence.
                    return _Cut(len(text[:i].rstrip()), Boundary.LINE)
                i += 1
                continue
            mark = self._judge_mark(i, eof) if i < limit else None
            if mark is None:
                i += 1
            elif mark.cut > limit:  # the segment would be too long
                if (cut := self._outgrown(limit)) is not None:
                    return cut
                limit = self._config.max_chars
            elif mark.verdict is _Verdict.WAIT:
                self._scan_from = i
                return None
            elif mark.verdict is _Verdict.END:
                return _Cut(mark.cut, mark.boundary)
            else:
                i = mark.cut
        self._scan_from = i
        # Only split a long run once more than the limit is known, so that a boundary right
        # at the limit is never missed.
        if len(text) > limit and (cut := self._outgrown(limit)) is not None:
            return cut
        max_chars = self._config.max_chars
        return self._split_long_run(max_chars) if len(text) > max_chars else None

    def _outgrown(self, limit: int) -> _Cut | None:
        """The cut of a segment that outgrew ``limit``. A short first segment's limit is cut at
        its last clause mark, never at a bare word gap to save time (a model reads the piece as
        an utterance): without such a mark, None, and the segment goes on like any other."""
        if limit >= self._config.max_chars:
            return self._split_long_run(limit)
        clause = self._last_clause_cut(limit)
        return clause if clause is not None and self._long_enough_first(clause.end) else None

    def _judge_mark(self, i: int, eof: bool) -> _Mark | None:
        char = self._pending[i]
        if char in _TERMINALS:
            return self._judge_terminal(i, eof)
        if char in _CLAUSE_MARKS and self._first_in_turn and self._config.short_first_segment:
            return self._judge_short_first_clause(i, eof)
        return None

    def _judge_terminal(self, i: int, eof: bool) -> _Mark:
        """A run of terminal marks at i, with the closing quotes and brackets after it."""
        text = self._pending
        run_end = _skip(text, i, _TERMINALS)
        cut = _skip(text, run_end, _CLOSERS)
        if cut == len(text) and not eof:
            return _Mark(_Verdict.WAIT, cut)
        run = text[i:run_end]
        if not _CJK_TERMINALS.isdisjoint(run):
            return _Mark(_Verdict.END, cut)
        if cut == len(text) or not text[cut].isspace():
            # "3.14", "example.com", "?c=1"; at the very end the rest is released anyway.
            return _Mark(_Verdict.GO_ON, cut)
        if "…" in run or ".." in run:
            return self._end_unless_lowercase_follows(cut, eof)
        if run == ".":
            return self._judge_period(i, cut, eof)
        return _Mark(_Verdict.END, cut)

    def _judge_period(self, dot: int, cut: int, eof: bool) -> _Mark:
        """A single "." followed by whitespace: an abbreviation, an initial or a list marker?"""
        kind = self._abbreviation_before(dot)
        if kind is _Abbrev.CONTINUE:
            return _Mark(_Verdict.GO_ON, cut)
        if kind is _Abbrev.MAYBE_TERMINAL:
            return self._end_if_capital_follows(cut, eof)
        return _Mark(_Verdict.END, cut)

    def _end_if_capital_follows(self, cut: int, eof: bool) -> _Mark:
        # "No. 5" and "etc. and" go on; "Apple Inc. The" ends.
        following = self._peek_past_gap(cut, eof)
        if following is None:
            return _Mark(_Verdict.WAIT, cut)
        ends = following in ("", "\n") or following.isupper()
        return _Mark(_Verdict.END if ends else _Verdict.GO_ON, cut)

    def _end_unless_lowercase_follows(self, cut: int, eof: bool) -> _Mark:
        # "Wait... what?" is one sentence.
        following = self._peek_past_gap(cut, eof)
        if following is None:
            return _Mark(_Verdict.WAIT, cut)
        return _Mark(_Verdict.GO_ON if following.islower() else _Verdict.END, cut)

    def _long_enough_first(self, cut: int) -> bool:
        """Whether a first segment ending at ``cut`` has ``first_segment_min_chars``."""
        return _visible_count(self._pending[:cut]) >= self._config.first_segment_min_chars

    def _judge_short_first_clause(self, i: int, eof: bool) -> _Mark:
        text = self._pending
        run_end = _skip(text, i, _CLAUSE_MARKS)
        cut = _skip(text, run_end, _CLOSERS)
        if cut == len(text) and not eof:
            return _Mark(_Verdict.WAIT, cut)
        if self._long_enough_first(cut) and self._is_clause_boundary(i, run_end, cut):
            return _Mark(_Verdict.END, cut, Boundary.CLAUSE)
        return _Mark(_Verdict.GO_ON, cut)

    def _is_clause_boundary(self, i: int, run_end: int, cut: int) -> bool:
        """Whether the clause marks text[i:run_end] (closers up to cut) end a clause."""
        text = self._pending
        spaced_after = cut < len(text) and text[cut].isspace()
        last = text[run_end - 1]
        if last in _UNSPACED_CLAUSE_MARKS:
            return True
        if last == _EN_DASH:  # spaced, unlike in a number range
            return spaced_after and self._char_at(i - 1).isspace()
        return spaced_after

    # -- long runs ------------------------------------------------------------------------------

    def _split_long_run(self, limit: int) -> _Cut:
        """No boundary within the limit: split at the last clause, else word gap, else hard.

        Needs more than ``limit`` pending characters.
        """
        return self._last_clause_cut(limit) or self._last_word_gap(limit) or self._hard_cut(limit)

    def _last_clause_cut(self, limit: int) -> _Cut | None:
        text = self._pending
        best = None
        i = 0
        while i < limit:
            if text[i] not in _CLAUSE_MARKS:
                i += 1
                continue
            run_end = _skip(text, i, _CLAUSE_MARKS)
            cut = _skip(text, run_end, _CLOSERS)
            if cut <= limit and self._is_clause_boundary(i, run_end, cut):
                best = cut
            i = cut
        return None if best is None else _Cut(best, Boundary.CLAUSE)

    def _last_word_gap(self, limit: int) -> _Cut | None:
        text = self._pending
        for gap in range(limit, 0, -1):
            if text[gap].isspace() and not text[gap - 1].isspace():
                return _Cut(gap, Boundary.WORD)
        return None

    def _hard_cut(self, limit: int) -> _Cut:
        text = self._pending
        if text[:limit].isspace():
            # Only whitespace within the limit: a blank segment is the only way to stay in it.
            return _Cut(limit, Boundary.WORD)
        # Keep a combining mark or an emoji joiner/modifier with its base character.
        floor = len(text) - len(text.lstrip()) + 1
        cut = limit
        while cut > floor and _joins_previous(text, cut):
            cut -= 1
        return _Cut(cut, Boundary.HARD)

    # -- look-around ------------------------------------------------------------------------------

    def _char_at(self, k: int) -> str:
        """Pending character k; a negative k looks back into released text ("" past it)."""
        if k >= 0:
            return self._pending[k]
        return self._behind[k] if -k <= len(self._behind) else ""

    def _peek_past_gap(self, start: int, eof: bool) -> str | None:
        """The first character from ``start`` on that is not whitespace or an opener.

        "\\n" if a line break comes first, "" at the end of the text (or after a very long gap),
        None if more text is needed to know.
        """
        text = self._pending
        end = min(len(text), start + _MAX_GAP)
        for char in text[start:end]:
            if char in _LINE_BREAKS:
                return "\n"
            if not char.isspace() and char not in _OPENERS:
                return char
        return "" if eof or end - start == _MAX_GAP else None

    def _abbreviation_before(self, dot: int) -> _Abbrev:
        start = dot
        while dot - start <= _MAX_WORD and _is_word_char(self._char_at(start - 1)):
            start -= 1
        if dot - start > _MAX_WORD or self._char_at(start - 1) in _URL_CHARS:
            return _Abbrev.NONE
        word = self._text_between(start, dot).lstrip(".")
        lowered = word.lower()
        if lowered in _ALWAYS_CONTINUE or (len(word) == 1 and word.isalpha()):
            return _Abbrev.CONTINUE  # "Dr. Who", "J. R. R. Tolkien"
        if word.isdecimal() and self._line_starts_at(start):
            return _Abbrev.CONTINUE  # the list marker "1. First item"
        if lowered in _MAYBE_TERMINAL or _is_dotted_acronym(word):
            return _Abbrev.MAYBE_TERMINAL
        return _Abbrev.NONE

    def _text_between(self, start: int, end: int) -> str:
        """Text between two pending indexes; negative ones reach back into released text."""
        if start >= 0:
            return self._pending[start:end]
        behind = len(self._behind)
        return self._behind[behind + start : behind + min(end, 0)] + self._pending[: max(end, 0)]

    def _line_starts_at(self, k: int) -> bool:
        """Whether only whitespace lies between the last line break (or the start) and k."""
        before = self._text_between(-len(self._behind), k)
        return _line_start_after(before, self._behind_at_line_start)


# -- helpers ------------------------------------------------------------------------------------


def _skip(text: str, i: int, chars: frozenset[str]) -> int:
    """The index of the first character at or after i that is not in ``chars``."""
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _has_content(text: str, end: int) -> bool:
    return end > 0 and not text[:end].isspace()


def _visible_count(text: str) -> int:
    return sum(not char.isspace() for char in text)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "."


def _is_dotted_acronym(word: str) -> bool:
    """U.S.A, a.m, Ph.D: short letter groups joined by dots."""
    parts = word.split(".")
    return len(parts) > 1 and all(part.isalpha() and len(part) <= 2 for part in parts)


def _line_start_after(text: str, at_line_start: bool) -> bool:
    """Whether the end of ``text`` is at a line start, given whether its start is."""
    for char in reversed(text):
        if char in _LINE_BREAKS:
            return True
        if not char.isspace():
            return False
    return at_line_start


def _joins_previous(text: str, i: int) -> bool:
    """Whether text[i] belongs to the same user-perceived character as text[i - 1]."""
    char = text[i]
    return (
        text[i - 1] == _ZERO_WIDTH_JOINER
        or char == _ZERO_WIDTH_JOINER
        or unicodedata.category(char) in ("Mn", "Mc", "Me")
        or "\ufe00" <= char <= "\ufe0f"  # variation selectors
        or "\U0001f3fb" <= char <= "\U0001f3ff"  # skin tone modifiers
    )


def _classify(text: str) -> Boundary:
    """The boundary of a segment cut at the end of the input, from how its text ends."""
    core = text.rstrip()
    while core and core[-1] in _CLOSERS:
        core = core[:-1].rstrip()
    last = core[-1:]
    if last and last in _TERMINALS:
        return Boundary.SENTENCE
    if last and last in _CLAUSE_MARKS:
        return Boundary.CLAUSE
    return Boundary.WORD


def final_boundary(text: str) -> Boundary:
    """The kind of boundary ``text`` ends on, as the segmenter would judge it at its end."""
    segmenter = Segmenter(SegmenterConfig(short_first_segment=False))
    segments = [*segmenter.push(text), *segmenter.finish()]
    non_blank = [s for s in segments if not s.blank]
    return non_blank[-1].boundary if non_blank else Boundary.WORD
