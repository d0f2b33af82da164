"""Character timings for ElevenLabs-style ``alignment``: the session's words, on the client's
own characters, cut into the audio messages that carry them (no I/O).

A :class:`CharTimeline` follows one session (one ElevenLabs context): the text it accepted, its
segments and its word timings (``words`` messages: native or estimated). Every character gets
the timeline position where its sound starts: the characters of a word are spread evenly over
the word, the whitespace and punctuation after a word start where the word's sound ends (so the
pause after a sentence belongs to its full stop), and the characters that lead a segment start
where the segment does. When an audio message is sent, :meth:`CharTimeline.take` hands out the
characters whose sound starts before the message's audio ends, in text order, each with its
start and duration in whole milliseconds.

Time bases (docs/elevenlabs.md, "Alignment"): ``message`` times start from the end of the audio
the context's previous alignment covered, which is the start of the message's own audio unless
messages without characters came between; the last character lasts to the end of the message's
audio, so adding up each message's last start and duration keeps a client's clock exact (as
ElevenLabs' clients and Pipecat do). ``context`` times start from the context's first audio
sample. ``split`` gives ``alignment`` message times and ``normalizedAlignment`` context times:
Pipecat reads the first, LiveKit's plugin the second.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.core.elevenlabs_wire import Alignment

__all__ = ["AlignmentTimes", "CharTimeline"]

_FORGET_AFTER = 256  # characters handed out before they are dropped from memory


class AlignmentTimes(enum.StrEnum):
    """The time base of the two alignment fields (see the module docstring)."""

    SPLIT = "split"
    MESSAGE = "message"
    CONTEXT = "context"


def _between_words(char: str) -> bool:
    """Whitespace and punctuation: what the protocol's words leave out."""
    return char.isspace() or unicodedata.category(char).startswith("P")


class CharTimeline:
    """One context's characters and where on its timeline (samples at ``sample_rate``) the
    sound of each starts; which of them went out already. Offsets are the session's (from the
    context's first character); only the characters not handed out yet are kept."""

    def __init__(self, sample_rate: int, times: AlignmentTimes = AlignmentTimes.SPLIT) -> None:
        self._rate = sample_rate
        self._times = times
        # The characters from offset ``_base`` on, where each starts (None: not known yet), and
        # whether it belongs to a failed segment (never spoken).
        self._base = 0
        self._text: list[str] = []
        self._starts: list[int | None] = []
        self._skipped: list[bool] = []
        self._sent = 0  # characters handed out so far
        self._last_start = 0  # of the last character handed out (starts never go back)
        self._covered = 0  # end of the audio the alignments handed out so far cover
        self._segment_end = 0

    @property
    def pending(self) -> int:
        """Characters not handed out yet."""
        return self._base + len(self._text) - self._sent

    @property
    def held(self) -> int:
        """Characters held in memory (those not handed out, and a few hundred more at most)."""
        return len(self._text)

    def add_text(self, text: str) -> None:
        """Text the session accepted (appended to its text)."""
        self._text.extend(text)
        self._starts.extend([None] * len(text))
        self._skipped.extend([False] * len(text))

    def segment(self, char_start: int, char_end: int, sample_start: int) -> None:
        """A segment starts at ``sample_start``: the characters before it that never got a time
        (blank segments, stray symbols) and its own leading whitespace and punctuation start
        there."""
        for i in range(self._sent, char_start):
            if self._starts[i - self._base] is None:
                self._set(i, sample_start)
        i = max(char_start, self._sent)
        while i < char_end and _between_words(self._char(i)):
            self._set(i, sample_start)
            i += 1
        self._segment_end = char_end

    def words(self, words: Iterable[Mapping[str, Any]]) -> None:
        """Word timings of the current segment (a later timing of a word replaces the
        earlier one): each word's characters spread over it, the whitespace and punctuation
        after it at its end."""
        for word in words:
            start, end = word["char_start"], word["char_end"]
            first, last = word["sample_start"], max(word["sample_end"], word["sample_start"])
            for i in range(start, end):
                self._set(i, first + (last - first) * (i - start) // (end - start))
            i = max(end, self._sent)
            while i < self._segment_end and _between_words(self._char(i)):
                self._set(i, last)
                i += 1

    def skip(self, char_start: int, char_end: int) -> None:
        """The characters of a failed segment: reported as an error, never in an alignment."""
        for i in range(max(char_start, self._sent), char_end):
            self._skipped[i - self._base] = True

    def take(
        self, audio_end: int, *, everything: bool = False
    ) -> tuple[Alignment | None, Alignment | None]:
        """The characters of a message whose audio ends at ``audio_end``: those whose sound
        starts before it (``everything``: all the rest, at the end of a context). Returns
        ``alignment`` and ``normalizedAlignment`` in their time bases; (None, None) if no
        character starts in the message (its audio then counts towards the next one's)."""
        chars: list[str] = []
        starts: list[int] = []
        while self.pending:
            index = self._sent - self._base
            start = self._starts[index]
            if not everything and (start is None or start >= audio_end):
                break
            if not self._skipped[index]:
                at = min(max(start if start is not None else audio_end, self._last_start,
                             self._covered), audio_end)  # fmt: skip
                chars.append(self._text[index])
                starts.append(at)
                self._last_start = at
            self._sent += 1
        self._forget_sent()
        if not chars:
            return None, None
        begin, self._covered = self._covered, max(self._covered, audio_end)
        ms = [self._ms(s) for s in starts]
        durations = [b - a for a, b in zip(ms, [*ms[1:], self._ms(self._covered)], strict=True)]
        relative = Alignment(chars, [t - self._ms(begin) for t in ms], durations)
        absolute = Alignment(chars, ms, durations)
        match self._times:
            case AlignmentTimes.MESSAGE:
                return relative, relative
            case AlignmentTimes.CONTEXT:
                return absolute, absolute
        return relative, absolute

    def _char(self, offset: int) -> str:
        return self._text[offset - self._base]

    def _set(self, offset: int, sample: int) -> None:
        """A character's start, unless it went out already (its time is history)."""
        if offset >= self._sent:
            self._starts[offset - self._base] = sample

    def _forget_sent(self) -> None:
        """Drop the characters handed out, a few hundred at a time (a long context keeps only
        what it has not sent)."""
        sent = self._sent - self._base
        if sent >= _FORGET_AFTER:
            del self._text[:sent], self._starts[:sent], self._skipped[:sent]
            self._base = self._sent

    def _ms(self, sample: int) -> int:
        return round(sample * 1000 / self._rate)
