"""The text a backend reads, mapped back to the words of the request text (sans-I/O).

Backends with native word timing learn positions in the text they synthesized, which is the
:func:`~gateway.core.reading.read` reading of the request text ("$5" -> "five dollars",
Markdown marks removed, lexicon entries respelled). :class:`SpokenText` maps such a position
back to a word of the request text, so every :class:`~gateway.backends.base.WordTiming` carries
offsets into exactly what the client sent.

The words are those of :mod:`gateway.core.reading`: runs of non-space characters without their
outer punctuation (``"Hello,"`` -> ``Hello``; ``$5.`` -> ``$5``), and symbols that are read
("&"); words read as nothing (a dropped emoji, markup) are left out.
"""

from __future__ import annotations

import re
from typing import Final

from gateway.backends.base import WordTiming
from gateway.core.reading import DEFAULT_RULES, Reading, ReadingRules, ReadWord, read
from gateway.core.segmenter import Boundary

__all__ = ["SpokenText", "espeak_phoneme_text", "text_boundary"]

_TERMINALS: Final = frozenset(".!?…‼⁉。！？")  # noqa: RUF001
_CLAUSE_MARKS: Final = frozenset(",;:—、，；：")  # noqa: RUF001
_CLOSERS: Final = "\"'”’»)]}」』）】"  # noqa: RUF001
_CORE: Final = re.compile(r"\w(?:.*\w)?", re.DOTALL)


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
    """``text`` as a backend should read it (:attr:`spoken`), with the map back to ``text``'s
    words (:attr:`words`)."""

    def __init__(self, text: str, lang: str = "en-us", rules: ReadingRules = DEFAULT_RULES) -> None:
        self.text = text
        self.reading: Reading = read(text, lang, rules)
        self.spoken = self.reading.text
        self.words: tuple[ReadWord, ...] = self.reading.words

    def word_at(self, spoken_offset: int) -> int | None:
        """Index of the word a position in the spoken text belongs to (a position between
        words belongs to the word before it; before the first word, to the first); None
        only when the text has no words."""
        return self.reading.word_at(spoken_offset)

    def timing(self, index: int, sample_start: int, sample_end: int) -> WordTiming:
        """The :class:`WordTiming` of word ``index`` spoken over ``[sample_start, sample_end)``."""
        word = self.words[index]
        return WordTiming(word.char_start, word.char_end, sample_start, sample_end, word.spoken)


def espeak_phoneme_text(spoken: SpokenText) -> tuple[str, list[int]]:
    """The spoken text with each word that has espeak phonemes written as espeak's phoneme
    input (``[[...]]``), and for each of its characters (and its end) the position in
    ``spoken.spoken`` it stands for (a phoneme input stands for its word's start)."""
    text: list[str] = []
    origin: list[int] = []
    cursor = 0
    source = spoken.spoken
    for word in spoken.words:
        phonemes = word.phonemes.espeak if word.phonemes else None
        core = _CORE.search(source, word.out_start, word.out_end) if phonemes else None
        if core is None or phonemes is None:
            continue
        text.append(source[cursor : core.start()])
        origin.extend(range(cursor, core.start()))
        replaced = f"[[{phonemes}]]"
        text.append(replaced)
        origin.extend([core.start()] * len(replaced))
        cursor = core.end()
    text.append(source[cursor:])
    origin.extend(range(cursor, len(source) + 1))
    return "".join(text), origin
