"""Data types: what a rule proposes (:class:`Replacement`) and what normalization returns
(:class:`Normalized`: the text to speak, cut into :class:`Span` s that map it back to the source).

Offsets are code points (Python ``str`` indices), as everywhere in the gateway.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Normalized", "OutputWord", "Phonemes", "Replacement", "Span"]

_NON_SPACE: Final = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Phonemes:
    """A pronunciation in the alphabets the engines take: ``ipa`` (Kokoro, through its
    phonemizer's IPA) and ``espeak`` (espeak-ng's phoneme mnemonics, for espeak-ng and Piper,
    as in espeak's ``[[...]]`` input). Either may be missing; an engine whose alphabet is
    missing reads the replacement's ``spoken`` text instead."""

    ipa: str | None = None
    espeak: str | None = None


@dataclass(frozen=True, slots=True)
class Replacement:
    """Read the source characters ``[start, end)`` as ``spoken``.

    ``spoken`` may be empty (the characters are not read: Markdown marks, a skipped code
    block). ``kind`` names the rule that made it (``"date"``, ``"money"``...). ``phonemes`` is
    for the lexicon layer: a pronunciation for engines that take phonemes (``spoken`` is still
    what a text engine reads and what the client is shown).
    """

    start: int
    end: int
    spoken: str
    kind: str = "other"
    phonemes: Phonemes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"replacement span must be non-empty: [{self.start}, {self.end})")


@dataclass(frozen=True, slots=True)
class Span:
    """Output ``[out_start, out_end)`` is the reading of source ``[src_start, src_end)``.

    ``kind`` is ``None`` for verbatim text (source and output are the same characters, so
    offsets inside map one to one); otherwise the output as a whole stands for the source as a
    whole. A replacement's output may carry a space of padding at either end (added so that it
    does not run into its neighbours: "x86" -> "x eighty-six").
    """

    src_start: int
    src_end: int
    out_start: int
    out_end: int
    kind: str | None = None
    phonemes: Phonemes | None = None

    @property
    def verbatim(self) -> bool:
        return self.kind is None


@dataclass(frozen=True, slots=True)
class OutputWord:
    """A whitespace-delimited word of the output text and the source characters it reads."""

    text: str
    out_start: int
    out_end: int
    src_start: int
    src_end: int


@dataclass(frozen=True, slots=True)
class Normalized:
    """``text`` is ``source`` as it should be read aloud; ``spans`` cover both, in order.

    Invariants: ``spans`` are contiguous and cover ``source`` ``[0, len(source))`` and ``text``
    ``[0, len(text))``; a verbatim span's output equals its source characters.
    """

    source: str
    text: str
    spans: tuple[Span, ...]
    _out_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_out_starts", tuple(span.out_start for span in self.spans))

    @property
    def changed(self) -> bool:
        return any(not span.verbatim for span in self.spans)

    def replacements(self) -> list[Replacement]:
        """The non-verbatim spans as replacements (padding stripped from ``spoken``)."""
        return [
            Replacement(
                span.src_start,
                span.src_end,
                self.text[span.out_start : span.out_end].strip(),
                span.kind or "other",
                span.phonemes,
            )
            for span in self.spans
            if not span.verbatim
        ]

    def source_offset(self, position: int, *, end: bool = False) -> int:
        """The source offset that output ``position`` comes from.

        With ``end`` the position is read as an exclusive end: inside a replacement it maps to
        the end of the replaced source, otherwise to its start.
        """
        if end:
            if position <= 0:
                return 0
            # The last span starting before ``position``: never an empty one (see below).
            index = bisect.bisect_left(self._out_starts, position) - 1
        else:
            if position >= len(self.text):
                return len(self.source)
            # The last span starting at or before ``position``; empty (deleted) spans share
            # their start with the span after them, so this is never one of them.
            index = bisect.bisect_right(self._out_starts, position) - 1
        span = self.spans[index]
        if span.verbatim:
            return span.src_start + min(position - span.out_start, span.out_end - span.out_start)
        return span.src_end if end else span.src_start

    def source_range(self, out_start: int, out_end: int) -> tuple[int, int]:
        """The source characters that output ``[out_start, out_end)`` reads."""
        if out_end <= out_start:
            offset = self.source_offset(out_start)
            return offset, offset
        return self.source_offset(out_start), self.source_offset(out_end, end=True)

    def output_words(self) -> list[OutputWord]:
        """Each whitespace-delimited word of ``text`` with its source range."""
        words: list[OutputWord] = []
        for match in _NON_SPACE.finditer(self.text):
            start, end = self.source_range(*match.span())
            words.append(OutputWord(match.group(), match.start(), match.end(), start, end))
        return words


def assemble(source: str, replacements: list[Replacement]) -> Normalized:
    """Build :class:`Normalized` from sorted, non-overlapping replacements.

    Replacement output is padded with a space where it would otherwise run into a neighbour
    ("x86" -> "x eighty-six"); a deletion between two word characters becomes a space.
    """
    texts: list[str] = []
    spans: list[Span] = []
    out = 0
    cursor = 0

    def last_char() -> str:
        for text in reversed(texts):
            if text:
                return text[-1]
        return " "

    def add(src_start: int, src_end: int, text: str, kind: str | None, ph: Phonemes | None) -> None:
        nonlocal out
        if kind is None and _needs_space(last_char(), text[:1]) and spans:
            # The previous span is a replacement (verbatim spans never touch): pad it.
            previous = spans[-1]
            texts[-1] += " "
            spans[-1] = Span(
                previous.src_start,
                previous.src_end,
                previous.out_start,
                previous.out_end + 1,
                previous.kind,
                previous.phonemes,
            )
            out += 1
        if kind is not None and text and _needs_space(last_char(), text[0]):
            text = " " + text
        texts.append(text)
        spans.append(Span(src_start, src_end, out, out + len(text), kind, ph))
        out += len(text)

    for rep in replacements:
        if rep.start < cursor:
            raise ValueError(f"overlapping replacements at {rep.start}")
        if rep.start > cursor:
            add(cursor, rep.start, source[cursor : rep.start], None, None)
        add(rep.start, rep.end, rep.spoken, rep.kind, rep.phonemes)
        cursor = rep.end
    if cursor < len(source):
        add(cursor, len(source), source[cursor:], None, None)
    return Normalized(source, "".join(texts), tuple(spans))


_AFTER_WORD: Final = frozenset(".,;:!?)]}%")


def _needs_space(left: str, right: str) -> bool:
    """Whether ``left`` followed directly by ``right`` would glue two spoken words."""
    if not left or not right or left.isspace() or right.isspace():
        return False
    return right.isalnum() and (left.isalnum() or left in _AFTER_WORD)
