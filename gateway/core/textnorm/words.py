"""Per original word, the words spoken for it: what a gateway word event needs.

A *source word* is a run of non-space characters without its leading and trailing punctuation
(the gateway's definition: ``"Hello,"`` -> ``Hello``, ``**Bold**`` -> ``Bold``), where
characters that normalization drops count as spaces (so ``[docs](https://x.org)`` has the
word ``docs``, not the link target). Normalization can read a run of punctuation ("&" ->
"and"), so words are grouped: every source word, and every replacement that reads something
or drops something other than punctuation and formatting (an emoji, a code block: a silent
word), is an interval; overlapping or touching intervals ("10-15" and "%") merge into one
:class:`WordReading`. Each output word then goes to the reading its source range overlaps
most.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from gateway.core.textnorm.model import Normalized, Phonemes, Span

__all__ = ["WordReading", "source_words", "word_readings"]

_RUN: Final = re.compile(r"\S+")
_MARKS: Final = frozenset("`~|><=+")  # Markdown and table marks that are not Unicode "P*"
# Kinds of replacement that only format the text: what they drop is never a word of its own.
FORMATTING_KINDS: Final = frozenset({"markup", "symbol"})


@dataclass(frozen=True, slots=True)
class WordReading:
    """Source word(s) ``[start, end)`` (``text``) read as ``words``.

    ``spoken`` is ``None`` when the reading is the text itself, ``""`` when nothing is read
    (a dropped emoji, a skipped code block), else the words joined by spaces without their
    outer punctuation: the ``spoken`` field of a gateway word event. ``kinds`` are the rules
    that changed it. ``[out_start, out_end)`` is where its words are in the normalized text
    (empty, at the position it would have, for a silent word). ``phonemes`` is set when one
    lexicon entry with phonemes reads the whole word.
    """

    start: int
    end: int
    text: str
    words: tuple[str, ...]
    spoken: str | None
    kinds: tuple[str, ...]
    out_start: int = 0
    out_end: int = 0
    phonemes: Phonemes | None = None


def _is_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("P") or char in _MARKS


def source_words(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each source word of ``text``."""
    spans: list[tuple[int, int]] = []
    for run in _RUN.finditer(text):
        start, end = run.span()
        while start < end and _is_mark(text[start]):
            start += 1
        while end > start and _is_mark(text[end - 1]):
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans


def _is_word(normalized: Normalized, span: Span) -> bool:
    """Whether a replacement is (part of) a word: it reads something, or silently drops
    something other than punctuation and formatting."""
    spoken = normalized.text[span.out_start : span.out_end]
    if any(char.isalnum() for char in spoken):
        return True
    if span.kind in FORMATTING_KINDS:
        return False
    source = normalized.source[span.src_start : span.src_end]
    return any(not char.isspace() and not _is_mark(char) for char in source)


def word_readings(normalized: Normalized) -> list[WordReading]:
    """The source words of ``normalized.source`` (grouped as above) with their readings."""
    source = normalized.source
    changed = [span for span in normalized.spans if not span.verbatim]
    masked = list(source)
    for span in changed:
        if not normalized.text[span.out_start : span.out_end].strip():  # dropped: a separator
            masked[span.src_start : span.src_end] = " " * (span.src_end - span.src_start)
    intervals = source_words("".join(masked))
    intervals.extend(
        (span.src_start, span.src_end) for span in changed if _is_word(normalized, span)
    )
    intervals.sort()
    groups: list[list[int]] = []
    for start, end in intervals:
        if groups and start <= groups[-1][1]:
            groups[-1][1] = max(groups[-1][1], end)
        else:
            groups.append([start, end])
    starts = [group[0] for group in groups]
    tokens: list[list[str]] = [[] for _ in groups]
    places: list[list[int]] = [[] for _ in groups]
    for word in normalized.output_words():
        index = _best_group(groups, starts, word.src_start, word.src_end)
        if index is not None:
            tokens[index].append(word.text)
            places[index] += (word.out_start, word.out_end)
    readings: list[WordReading] = []
    for (start, end), words, place in zip(groups, tokens, places, strict=True):
        text = source[start:end]
        joined = " ".join(words)
        lo, hi = 0, len(joined)
        while lo < hi and _is_mark(joined[lo]):
            lo += 1
        while hi > lo and _is_mark(joined[hi - 1]):
            hi -= 1
        bare = joined[lo:hi]
        overlapping = [span for span in changed if span.src_start < end and start < span.src_end]
        kinds = tuple(dict.fromkeys(span.kind or "" for span in overlapping))
        phonemes = overlapping[0].phonemes if len(overlapping) == 1 else None
        if not place:  # silent: where its reading would be
            at = _output_position(normalized, start)
            place = [at, at]
        readings.append(
            WordReading(
                start,
                end,
                text,
                tuple(words),
                None if bare == text else bare,
                kinds,
                min(place),
                max(place),
                phonemes,
            )
        )
    return readings


def _output_position(normalized: Normalized, source_position: int) -> int:
    """The output offset where source ``source_position`` is (or would be) read."""
    for span in normalized.spans:
        if span.src_start <= source_position < span.src_end:
            if span.verbatim:
                return span.out_start + source_position - span.src_start
            return span.out_start
    return len(normalized.text)


def _best_group(groups: list[list[int]], starts: list[int], start: int, end: int) -> int | None:
    """The group that ``[start, end)`` overlaps most (the first of equals), if any."""
    best: int | None = None
    best_overlap = 0
    index = max(0, bisect.bisect_right(starts, start) - 1)
    while index < len(groups) and groups[index][0] < max(end, start + 1):
        overlap = min(end, groups[index][1]) - max(start, groups[index][0])
        if start == end and groups[index][0] <= start < groups[index][1]:
            overlap = 1
        if overlap > best_overlap:
            best, best_overlap = index, overlap
        index += 1
    return best
