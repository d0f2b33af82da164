"""The words of one segment on their way to the client: native timings placed on the session
timeline, or estimates spread over the audio, and the refit that replaces an estimate once the
segment's whole audio is known (no I/O)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from gateway.core.alignment import estimate_spans, spoken_words
from gateway.core.chunks import WordTiming
from gateway.core.reading import DEFAULT_RULES, ReadingRules
from gateway.core.session import SpeakSegment
from gateway.core.ssml import SegmentMarkup

__all__ = ["SegmentWords", "word_entry"]

WordEntry = dict[str, Any]


class SegmentWords:
    """The words of one segment; ``native``: the backend times its words itself."""

    def __init__(
        self,
        work: SpeakSegment,
        native: bool,
        lang: str = "en-us",
        rules: ReadingRules = DEFAULT_RULES,
        markup: SegmentMarkup | None = None,
    ) -> None:
        self.segment = work
        self.markup = markup  # SSML: the backends read ``text``, the markup blanked
        self.text = markup.plain if markup is not None else work.segment.text
        if markup is not None and markup.readings:
            rules = dataclasses.replace(rules, fixed=markup.readings)
        self._native = native
        self._words = spoken_words(self.text, lang, rules)
        self.weight = sum(len(word.spoken or word.speak) for word in self._words)
        self.sent = False
        self.audio_sent = False
        self.predicted = False  # estimated before the audio's length was known
        self.pieces = 1  # separately synthesized pieces so far
        self.start = 0  # timeline position where the estimate starts

    @property
    def refit(self) -> bool:
        """Whether the estimate sent must be fitted again to the whole segment's audio."""
        return not self._native and (self.predicted or self.pieces > 1)

    def native(self, placed: list[WordTiming], timeline: Callable[[int], int]) -> list[WordEntry]:
        """Backend timings (segment text, shaper output) -> session offsets and timeline."""
        self.sent = True
        segment = self.segment.segment
        return [
            word_entry(segment.start, segment.text, word.char_start, word.char_end,
                       timeline(word.sample_start), timeline(word.sample_end), word.spoken)
            for word in placed
        ]  # fmt: skip

    def estimated(self, start: int, end: int) -> list[WordEntry]:
        """All the segment's words spread over ``[start, end)`` by their spoken length."""
        self.sent = True
        segment = self.segment.segment
        weights = [len(word.spoken or word.speak) for word in self._words]
        return [
            word_entry(segment.start, segment.text, word.char_start, word.char_end,
                       span.sample_start, span.sample_end, word.spoken)
            for word, span in zip(self._words, estimate_spans(weights, start, end), strict=True)
        ]  # fmt: skip


def word_entry(
    offset: int,
    text: str,
    char_start: int,
    char_end: int,
    sample_start: int,
    sample_end: int,
    spoken: str | None,
) -> WordEntry:
    """One entry of a ``words`` message (docs/protocol.md, section 4)."""
    word: WordEntry = {
        "text": text[char_start:char_end],
        "char_start": offset + char_start,
        "char_end": offset + char_end,
        "sample_start": sample_start,
        "sample_end": sample_end,
    }
    if spoken is not None:
        word["spoken"] = spoken
    return word
