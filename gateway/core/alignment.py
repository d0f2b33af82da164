"""Word timing: which words of the client's text are spoken when (no I/O).

Three steps, each pure:

1. :func:`spoken_words` cuts a segment's text into words as they will be spoken, each with the
   span of the original text it came from (through :mod:`gateway.core.reading`), so every
   timing points at exactly what the client sent.
2. :func:`phoneme_owners` decides which word each phoneme of the model's input belongs to. The
   phonemizer reads the whole text in context (better prosody, "a" said as an article), which
   may merge short words ("in the" read as one); phonemizing each word alone gives the reference,
   and a character alignment of the two assigns every context phoneme to a word.
3. :func:`word_spans` turns per-phoneme sample edges (from the model's durations) into word
   start and end samples; :func:`estimate_spans` spreads words over audio in proportion to their
   length, for engines that report no timing.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gateway.core.reading import DEFAULT_RULES, ReadingRules, ReadWord, read

__all__ = [
    "SpokenWord",
    "WordSpan",
    "estimate_spans",
    "phoneme_owners",
    "spoken_words",
    "word_spans",
]

# Phoneme-string characters that are pauses or separators rather than sounds of a word.
_PHONEME_PAUSES: Final = frozenset(" .,;:!?…—–-\"'()«»“”")  # noqa: RUF001


SpokenWord = ReadWord  # a word to speak, with the client's characters it stands for


@dataclass(frozen=True, slots=True)
class WordSpan:
    """Where a word sits in a piece's audio, in samples."""

    word: int
    sample_start: int
    sample_end: int


def spoken_words(
    text: str, lang: str = "en-us", rules: ReadingRules = DEFAULT_RULES
) -> list[SpokenWord]:
    """The words of ``text`` as they will be spoken, mapped to the original characters
    (:func:`gateway.core.reading.read`)."""
    return list(read(text, lang, rules).words)


def phoneme_owners(context: str, per_word: Sequence[str]) -> list[int]:
    """For each character of ``context`` (the phonemes of the whole text), the index of the
    word it belongs to, given ``per_word`` (the phonemes of each word alone); -1 for spaces."""
    reference: list[str] = []
    owner_of_reference: list[int] = []
    for index, phonemes in enumerate(per_word):
        for char in phonemes:
            if not char.isspace():
                reference.append(char)
                owner_of_reference.append(index)
    positions = [i for i, char in enumerate(context) if not char.isspace()]
    hypothesis = "".join(context[i] for i in positions)
    owners = [-1] * len(context)
    matcher = difflib.SequenceMatcher(None, hypothesis, "".join(reference), autojunk=False)
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            owners[positions[block.a + offset]] = owner_of_reference[block.b + offset]
    _fill_gaps(owners, positions)
    return owners


def _fill_gaps(owners: list[int], positions: list[int]) -> None:
    """Unmatched phonemes join the word before them (the first ones, the word after); word
    indices never go back, so words stay in order."""
    known = [owners[i] for i in positions if owners[i] >= 0]
    current = known[0] if known else 0
    for i in positions:
        if owners[i] < current:
            owners[i] = current
        current = owners[i]


def word_spans(
    context: str, owners: Sequence[int], edges: Sequence[int], word_count: int
) -> list[WordSpan]:
    """Word start/end samples from phoneme edges.

    ``edges[i]`` is the sample where phoneme ``i`` of ``context`` starts (``len(context) + 1``
    values). Pauses and punctuation do not count as a word's own sound. A word with no sound of
    its own gets an empty span where it would have been.
    """
    spans: list[WordSpan] = []
    cursor = 0
    for word in range(word_count):
        sounds = [
            i
            for i, owner in enumerate(owners)
            if owner == word and context[i] not in _PHONEME_PAUSES
        ]
        if sounds:
            start = max(cursor, int(edges[sounds[0]]))
            end = max(start, int(edges[sounds[-1] + 1]))
        else:
            start = end = cursor
        spans.append(WordSpan(word, start, end))
        cursor = end
    return spans


def estimate_spans(weights: Sequence[int], start: int, end: int) -> list[WordSpan]:
    """Spread words over ``[start, end)`` in proportion to ``weights`` (e.g. their lengths)."""
    total = sum(weights) or 1
    spans, position = [], float(start)
    for word, weight in enumerate(weights):
        width = (end - start) * weight / total
        spans.append(WordSpan(word, round(position), round(position + width)))
        position += width
    return spans
