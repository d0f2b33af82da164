"""The text a backend reads, mapped back to the words of the request text (sans-I/O).

Backends with native word timing learn positions in the text they synthesized, which is the
:func:`~gateway.core.normalize.speakable` rewrite of the request text ("$5" -> "5 dollars",
Markdown marks removed). :class:`SpokenText` maps such a position back to a word of the
request text, so every :class:`~gateway.backends.base.WordTiming` carries offsets into exactly
what the client sent.

A word of the request text is a run of non-space characters without its leading and trailing
punctuation (``"Hello,"`` -> ``Hello``; ``$5.`` -> ``$5``; an emoji is a word). A run that is
only punctuation (``—``) is not a word.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from gateway.backends.base import WordTiming
from gateway.core.normalize import speakable
from gateway.core.segmenter import Boundary

__all__ = ["SpokenText", "TextWord", "text_boundary", "text_words"]

_RUN: Final = re.compile(r"\S+")
_TERMINALS: Final = frozenset(".!?…‼⁉。！？")  # noqa: RUF001
_CLAUSE_MARKS: Final = frozenset(",;:—、，；：")  # noqa: RUF001
_CLOSERS: Final = "\"'”’»)]}」』）】"  # noqa: RUF001


@dataclass(frozen=True, slots=True)
class TextWord:
    """A word at ``[start, end)`` of the text, inside the non-space run ``[run_start, run_end)``."""

    start: int
    end: int
    run_start: int
    run_end: int


def _punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def text_words(text: str) -> list[TextWord]:
    """The words of ``text``, in order."""
    words = []
    for run in _RUN.finditer(text):
        start, end = run.span()
        while start < end and _punctuation(text[start]):
            start += 1
        while end > start and _punctuation(text[end - 1]):
            end -= 1
        if start < end:
            words.append(TextWord(start, end, *run.span()))
    return words


def text_boundary(text: str) -> Boundary:
    """The kind of boundary ``text`` ends on, from its last non-space character that is not a
    closing quote or bracket."""
    last = text.rstrip().rstrip(_CLOSERS)[-1:]
    if last in _TERMINALS:
        return Boundary.SENTENCE
    if last in _CLAUSE_MARKS:
        return Boundary.CLAUSE
    return Boundary.WORD


class SpokenText:
    """``text`` as a backend should read it, with the map back to ``text``'s words."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pieces = speakable(text)
        self.spoken = "".join(piece.spoken for piece in self.pieces)
        self.words = text_words(text)
        # For every spoken character (and the end), the request-text offset it comes from.
        origin: list[int] = []
        for piece in self.pieces:
            verbatim = piece.spoken == text[piece.start : piece.end]
            for k in range(len(piece.spoken)):
                origin.append(piece.start + k if verbatim else piece.start)
        origin.append(len(text))
        self._origin = origin
        self._run_starts = [word.run_start for word in self.words]

    def original_offset(self, spoken_offset: int) -> int:
        """The request-text offset that the spoken text's ``spoken_offset`` comes from."""
        return self._origin[max(0, min(spoken_offset, len(self._origin) - 1))]

    def word_at(self, spoken_offset: int) -> int | None:
        """Index of the word a position in the spoken text belongs to.

        A position after a word's run (between runs, or in a run of only punctuation) belongs
        to the word before it: backends read one word as several (an emoji's name, "42" as
        "forty two") and report the later ones at such positions. A position before the first
        word belongs to the first word; ``None`` only when the text has no words.
        """
        if not self.words:
            return None
        offset = self.original_offset(spoken_offset)
        return max(0, bisect.bisect_right(self._run_starts, offset) - 1)

    def spoken_form(self, index: int) -> str | None:
        """How word ``index`` is read, where that differs from its text ("$5" -> "5 dollars")."""
        word = self.words[index]
        parts = []
        for piece in self.pieces:
            if piece.end <= word.start or piece.start >= word.end:
                continue
            if piece.spoken == self.text[piece.start : piece.end]:
                parts.append(self.text[max(piece.start, word.start) : min(piece.end, word.end)])
            else:
                parts.append(piece.spoken)
        spoken = " ".join("".join(parts).split())
        return None if spoken == self.text[word.start : word.end] else spoken

    def timing(self, index: int, sample_start: int, sample_end: int) -> WordTiming:
        """The :class:`WordTiming` of word ``index`` spoken over ``[sample_start, sample_end)``."""
        word = self.words[index]
        return WordTiming(
            word.start, word.end, sample_start, sample_end, spoken=self.spoken_form(index)
        )
