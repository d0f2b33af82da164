"""How a segment of the client's text is read aloud, word by word (no I/O).

:func:`read` runs the language's normalizer (:mod:`gateway.core.textnorm`) with the session's
lexicon and the fixed readings of its markup (SSML ``sub``, ``phoneme``, ``say-as``, and the
tags themselves, read as nothing). The :class:`Reading` holds the text an engine reads and, for
every word of the client's text, its characters, what is read for it and where that is in the
engine's text, so timings found in the engine's text map back to exactly what the client sent.

Words follow :func:`gateway.core.textnorm.word_readings`: runs of non-space characters without
their outer punctuation, grouped where one reading covers several ("10-15%"), plus symbols that
are read ("&"). A word that is read as nothing (a dropped emoji, a skipped code block, markup)
is left out: it has no sound to time.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from gateway.core.textnorm import (
    Lexicon,
    Normalized,
    Phonemes,
    Replacement,
    Settings,
    get_normalizer,
)
from gateway.core.textnorm.words import word_readings

__all__ = ["DEFAULT_RULES", "ReadWord", "Reading", "ReadingRules", "read"]


@dataclass(frozen=True, slots=True)
class ReadingRules:
    """What decides how a text is read, besides its language.

    ``settings``: the normalization settings; ``lexicon``: the pronunciation lexicon (any object
    with ``find(text)``, see :mod:`gateway.core.lexicon`); ``fixed``: readings that win over
    both (offsets into the text read: SSML markup); ``normalize``: False reads numbers and
    abbreviations as written (only the lexicon and ``fixed`` apply).
    """

    settings: Settings = field(default_factory=Settings)
    lexicon: Lexicon | None = None
    fixed: tuple[Replacement, ...] = ()
    normalize: bool = True

    def shifted(self, start: int, end: int) -> ReadingRules:
        """These rules for ``text[start:end]`` (fixed readings cut to it and moved)."""
        if not self.fixed:
            return self
        inside = tuple(
            Replacement(r.start - start, r.end - start, r.spoken, r.kind, r.phonemes)
            for r in self.fixed
            if start <= r.start and r.end <= end
        )
        return ReadingRules(self.settings, self.lexicon, inside, self.normalize)


DEFAULT_RULES: Final = ReadingRules()


@dataclass(frozen=True, slots=True)
class ReadWord:
    """A word of the client's text ``[char_start, char_end)`` and how it is read.

    ``speak``: the words read for it, with their punctuation (what a phonemizer gets);
    ``spoken``: the reading where it differs from the text (a ``words`` event's ``spoken``);
    ``[out_start, out_end)``: where ``speak`` is in :attr:`Reading.text`; ``phonemes``: a
    lexicon or SSML pronunciation.
    """

    char_start: int
    char_end: int
    speak: str
    spoken: str | None
    out_start: int
    out_end: int
    phonemes: Phonemes | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """``source`` as an engine reads it: ``text``, and its :attr:`words` in order."""

    source: str
    text: str
    words: tuple[ReadWord, ...]
    normalized: Normalized
    _out_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_out_starts", tuple(w.out_start for w in self.words))

    def word_at(self, position: int) -> int | None:
        """The index of the word that ``text[position]`` is read for.

        A position between two words belongs to the word before it (engines report a word's
        later parts there: "forty two"); before the first word, to the first. None only when
        there are no words.
        """
        if not self.words:
            return None
        return max(0, bisect.bisect_right(self._out_starts, position) - 1)

    def source_offset(self, position: int) -> int:
        """The offset in ``source`` that ``text[position]`` reads."""
        return self.normalized.source_offset(position)


class _Fixed:
    """The fixed readings, then the lexicon's."""

    def __init__(self, fixed: tuple[Replacement, ...], lexicon: Lexicon | None) -> None:
        self._fixed = fixed
        self._lexicon = lexicon

    def find(self, text: str) -> Iterator[Replacement]:
        yield from self._fixed
        if self._lexicon is not None:
            yield from self._lexicon.find(text)


@functools.lru_cache(maxsize=256)
def read(text: str, lang: str, rules: ReadingRules = DEFAULT_RULES) -> Reading:
    """How ``text`` (one segment or call) is read in language ``lang`` under ``rules``.

    Pure; the last results are cached (the speaking pipeline and the backend read each call's
    text alike). About a millisecond for a 170-character sentence."""
    language = lang if rules.normalize else "und"  # no normalizer: only the lexicon applies
    finder = _Fixed(rules.fixed, rules.lexicon) if rules.fixed else rules.lexicon
    normalized = get_normalizer(language, rules.settings).normalize(text, lexicon=finder)
    words = tuple(
        ReadWord(r.start, r.end, " ".join(r.words), r.spoken, r.out_start, r.out_end, r.phonemes)
        for r in word_readings(normalized)
        if r.words
    )
    return Reading(text, normalized.text, words, normalized)
