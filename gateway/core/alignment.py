"""Word timing: which words of the client's text are spoken when (no I/O).

Three steps, each pure:

1. :func:`spoken_words` cuts a segment's text into words as they will be spoken, each with the
   span of the original text it came from (through :mod:`gateway.core.normalize`), so every
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
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gateway.core.normalize import Piece, speakable

__all__ = [
    "SpokenWord",
    "WordSpan",
    "estimate_spans",
    "phoneme_owners",
    "spoken_words",
    "word_spans",
]

# Marks that sit around words but are not part of them (the pause, not the word, is theirs).
_LEADING: Final = "\"'([{«“‘¿¡*_`"  # noqa: RUF001 - typographic quotes are meant
_TRAILING: Final = "\"')]}»”’.,;:!?…*_`"  # noqa: RUF001
# Phoneme-string characters that are pauses or separators rather than sounds of a word.
_PHONEME_PAUSES: Final = frozenset(" .,;:!?…—–-\"'()«»“”")  # noqa: RUF001
_TOKEN: Final = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class SpokenWord:
    """A word to speak: ``speak`` goes to the phonemizer, ``[char_start, char_end)`` is the
    original text it stands for (surrounding punctuation excluded), ``spoken`` is set when the
    words read differ from that text ("$4.50" -> "4 dollars 50 cents")."""

    char_start: int
    char_end: int
    speak: str
    spoken: str | None


@dataclass(frozen=True, slots=True)
class WordSpan:
    """Where a word sits in a piece's audio, in samples."""

    word: int
    sample_start: int
    sample_end: int


def spoken_words(text: str) -> list[SpokenWord]:
    """The words of ``text`` as they will be spoken, mapped to the original characters."""
    pieces = speakable(text)
    spoken = "".join(piece.spoken for piece in pieces)
    starts = _spoken_offsets(pieces)
    words: list[SpokenWord] = []
    merged: list[tuple[int, int, list[str]]] = []
    for match in _TOKEN.finditer(spoken):
        start = _to_original(pieces, starts, match.start(), end=False)
        end = _to_original(pieces, starts, match.end(), end=True)
        if merged and start < merged[-1][1]:  # several spoken words from one original span
            first, last, parts = merged[-1]
            merged[-1] = (first, max(last, end), [*parts, match.group()])
        else:
            merged.append((start, end, [match.group()]))
    for start, end, parts in merged:
        char_start, char_end = _without_marks(text, start, end)
        said = text[char_start:char_end]
        if not said or all(unicodedata.category(char).startswith("P") for char in said):
            continue  # only punctuation: a pause, not a word
        speak = " ".join(parts)
        bare = speak.strip(_TRAILING + _LEADING)
        words.append(SpokenWord(char_start, char_end, speak, None if bare == said else bare))
    return words


def _spoken_offsets(pieces: Sequence[Piece]) -> list[int]:
    offsets, position = [], 0
    for piece in pieces:
        offsets.append(position)
        position += len(piece.spoken)
    return offsets


def _to_original(pieces: Sequence[Piece], starts: list[int], position: int, *, end: bool) -> int:
    """Map a position in the spoken text to the original text."""
    for piece, start in zip(pieces, starts, strict=True):
        inside = start <= position < start + len(piece.spoken) or (
            end and start < position <= start + len(piece.spoken)
        )
        if not inside:
            continue
        if piece.spoken == piece.text_of_original:
            return piece.start + (position - start)
        return piece.end if end else piece.start
    return pieces[-1].end if pieces else 0


def _without_marks(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in _LEADING:
        start += 1
    while end > start and text[end - 1] in _TRAILING:
        end -= 1
    return start, end


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
