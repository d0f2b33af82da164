"""Provider character timings -> word timings anchored to the text the client sent (no I/O).

Providers such as ElevenLabs return, with each chunk of audio, the characters it speaks and
when (``chars``, start and duration of each). Those characters are the text as sent, give or
take what the provider added or dropped (a trailing space, a repeated stretch when a model
re-aligns, characters that normalization rewrote). :class:`CharAligner` matches each batch of
timed characters against the text, keeps only characters it has not timed yet (so a repeated
stretch is not timed twice), and releases a word once its last character is timed.

Words are runs of non-space characters without their surrounding punctuation. A word whose
characters never matched (the provider rewrote it) gets the gap between its timed neighbours.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gateway.core.chunks import WordTiming

__all__ = ["CharAligner", "word_spans"]

_PUNCTUATION: Final = ".,;:!?\"'()[]{}<>«»“”‘’…—–-*_`~"  # noqa: RUF001 - typographic marks
_WORD: Final = re.compile(r"\S+")
_SLACK: Final = 16  # characters of text searched beyond a batch's length


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each word of ``text``: non-space runs stripped of punctuation."""
    spans = []
    for match in _WORD.finditer(text):
        start, end = match.span()
        while start < end and text[start] in _PUNCTUATION:
            start += 1
        while end > start and text[end - 1] in _PUNCTUATION:
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans


def _fold(text: str) -> str:
    """Case-folded, one code point for one (so positions still match the original)."""
    return "".join(f if len(f := c.casefold()) == 1 else c for c in text)


@dataclass(slots=True)
class _Word:
    start: int
    end: int
    sample_start: int | None = None
    sample_end: int | None = None

    @property
    def timed(self) -> bool:
        return self.sample_start is not None


class CharAligner:
    """Word timings for ``text`` from batches of timed characters (one owner; not thread-safe).

    ``offset`` is the position of ``text`` in the request text (word offsets are reported in
    request-text code points); sample positions are at ``sample_rate`` from the start of the
    piece, as :class:`~gateway.backends.base.WordTiming` wants them.
    """

    def __init__(self, text: str, *, offset: int = 0, sample_rate: int = 24000) -> None:
        self._text = text
        self._folded = _fold(text)
        self._offset = offset
        self._rate = sample_rate
        self._words = [_Word(s, e) for s, e in word_spans(text)]
        self._word_at = [-1] * len(text)
        for index, word in enumerate(self._words):
            for i in range(word.start, word.end):
                self._word_at[i] = index
        self._cursor = 0  # text before this index has been timed (or skipped)
        self._released = 0  # words before this index have been returned
        self._last_end = 0  # sample end of the last timed word released

    def feed(
        self,
        chars: Sequence[str],
        starts_s: Sequence[float],
        ends_s: Sequence[float],
        *,
        base_sample: int = 0,
    ) -> list[WordTiming]:
        """Add timed characters (seconds from ``base_sample``); returns the words now complete.

        Malformed batches (lists of different lengths) are ignored rather than guessed at.
        """
        if not (len(chars) == len(starts_s) == len(ends_s)) or not chars:
            return []
        units: list[tuple[int, int]] = []  # per code point of the batch: its sample span
        batch = ""
        for char, start, end in zip(chars, starts_s, ends_s, strict=True):
            first = base_sample + round(max(0.0, start) * self._rate)
            last = max(first, base_sample + round(max(0.0, end) * self._rate))
            for _ in char:
                units.append((first, last))
            batch += char
        lo = max(0, self._cursor - len(batch) - _SLACK)
        hi = min(len(self._text), self._cursor + 2 * len(batch) + _SLACK)
        matcher = difflib.SequenceMatcher(None, _fold(batch), self._folded[lo:hi], autojunk=False)
        for a, b, size in matcher.get_matching_blocks():
            for k in range(size):
                position = lo + b + k
                if position < self._cursor or self._text[position].isspace():
                    continue
                self._time(position, *units[a + k])
                self._cursor = position + 1
        return self._release(final=False)

    def finish(self, end_sample: int) -> list[WordTiming]:
        """No more timings: returns every word not returned yet (untimed ones interpolated up to
        ``end_sample``)."""
        self._cursor = len(self._text)
        return self._release(final=True, end_sample=end_sample)

    def _time(self, position: int, first: int, last: int) -> None:
        index = self._word_at[position]
        if index < 0:
            return
        word = self._words[index]
        if word.sample_start is None or word.sample_end is None:
            word.sample_start, word.sample_end = first, last
        else:
            word.sample_start = min(word.sample_start, first)
            word.sample_end = max(word.sample_end, last)

    def _release(self, *, final: bool, end_sample: int = 0) -> list[WordTiming]:
        out: list[WordTiming] = []
        untimed: list[_Word] = []
        index = self._released
        while index < len(self._words):
            word = self._words[index]
            if word.end > self._cursor and not final:
                break
            if not word.timed:
                untimed.append(word)
                index += 1
                continue
            assert word.sample_start is not None
            assert word.sample_end is not None
            start = max(word.sample_start, self._last_end)
            out.extend(self._spread(untimed, self._last_end, start))
            untimed = []
            end = max(start, word.sample_end)
            out.append(self._timing(word, start, end))
            self._last_end = end
            index += 1
        if final and untimed:
            out.extend(self._spread(untimed, self._last_end, max(self._last_end, end_sample)))
            untimed = []
        # Untimed words wait for the next timed word (their end is its start).
        self._released = index - len(untimed)
        return out

    def _spread(self, words: list[_Word], start: int, end: int) -> list[WordTiming]:
        if not words:
            return []
        step = (end - start) / len(words)
        timings = []
        for k, word in enumerate(words):
            timings.append(
                self._timing(word, start + round(k * step), start + round((k + 1) * step))
            )
        self._last_end = end
        return timings

    def _timing(self, word: _Word, start: int, end: int) -> WordTiming:
        return WordTiming(
            char_start=self._offset + word.start,
            char_end=self._offset + word.end,
            sample_start=start,
            sample_end=end,
        )
