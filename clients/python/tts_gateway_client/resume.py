"""Resuming a session on a new socket after the old one dropped mid-turn (docs/protocol.md,
section 15).

:class:`ResumeBook` keeps what the gateway has not yet reported as spoken: the text sent after
the end of the last segment whose ``segment_end`` arrived (all of that segment's audio came
before it), and the marks sent since (``flush``, ``cancel``, ``end``) not yet answered. Its
:meth:`ResumeBook.replay` is what a new session must be sent to speak the rest.

:class:`Shift` maps the new session's messages onto the old session's offsets and timeline:
characters from where the resent text starts, samples and frame numbers from the end of the
audio received, segment numbers after the last one seen. Offsets that a message reports about
text before the resent part (a new session knows nothing of it) start there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gateway.core.protocol import (
    Audio,
    BackendSwitched,
    Cancel,
    Cancelled,
    ClientMessage,
    Done,
    End,
    Error,
    Flush,
    Flushed,
    Progress,
    SegmentEnd,
    SegmentStart,
    ServerMessage,
    Text,
    Words,
)

__all__ = ["ResumeBook", "Shift"]


@dataclass(frozen=True, slots=True)
class Shift:
    """Where a resumed session's offsets start on the original session's."""

    chars: int = 0
    samples: int = 0
    seq: int = 0
    segment: int = 0

    def apply(self, message: ServerMessage) -> ServerMessage:
        """``message`` of the resumed session on the original offsets and timeline."""
        if not (self.chars or self.samples or self.seq or self.segment):
            return message
        c, s = self.chars, self.samples
        match message:
            case Audio():
                return dataclasses.replace(
                    message, seq=message.seq + self.seq, sample_start=message.sample_start + s
                )
            case SegmentStart():
                return dataclasses.replace(
                    message,
                    segment=message.segment + self.segment,
                    char_start=message.char_start + c,
                    char_end=message.char_end + c,
                    sample_start=message.sample_start + s,
                    received_chars=message.received_chars + c,
                )
            case Words():
                return dataclasses.replace(
                    message,
                    segment=message.segment + self.segment,
                    words=[self._word(word) for word in message.words],
                )
            case SegmentEnd():
                return dataclasses.replace(
                    message,
                    segment=message.segment + self.segment,
                    sample_end=message.sample_end + s,
                )
            case Progress():
                segment = None if message.segment is None else message.segment + self.segment
                return dataclasses.replace(
                    message,
                    segment=segment,
                    chars_received=message.chars_received + c,
                    chars_spoken=message.chars_spoken + c,
                )
            case Flushed():
                return dataclasses.replace(message, sample_end=message.sample_end + s)
            case Cancelled():
                return dataclasses.replace(
                    message,
                    sample_end=message.sample_end + s,
                    unspoken_start=message.unspoken_start + c,
                    unspoken_end=message.unspoken_end + c,
                    position=message.position + s,
                    cut=message.cut + c,
                    heard_start=message.heard_start + c,
                )
            case BackendSwitched():
                return dataclasses.replace(message, segment=message.segment + self.segment)
            case Error() if message.char_start is not None and message.char_end is not None:
                return dataclasses.replace(
                    message, char_start=message.char_start + c, char_end=message.char_end + c
                )
            case Done():
                return dataclasses.replace(
                    message, cut=message.cut + c, heard_start=message.heard_start + c
                )
        return message

    def _word(self, word: dict[str, Any]) -> dict[str, Any]:
        return {
            **word,
            "char_start": word["char_start"] + self.chars,
            "char_end": word["char_end"] + self.chars,
            "sample_start": word["sample_start"] + self.samples,
            "sample_end": word["sample_end"] + self.samples,
        }


@dataclass(slots=True)
class _Mark:
    """A flush, cancel or end sent after ``offset`` characters, not answered yet."""

    offset: int
    message: ClientMessage


@dataclass(slots=True)
class ResumeBook:
    """What the gateway has not reported spoken, on the original session's offsets."""

    frame_samples: int  # of the session's audio frames (ready.frame_samples)
    settled: int = 0  # text before this was spoken (its segment's audio all arrived)
    sent: int = 0  # characters sent in all
    _text: str = ""  # the text sent from ``settled`` on
    _marks: list[_Mark] = field(default_factory=list)
    _segment_ends: dict[int, int] = field(default_factory=dict)  # segment -> char_end
    next_sample: int = 0  # end of the audio received
    next_seq: int = 0
    next_segment: int = 0

    def sending(self, message: ClientMessage) -> None:
        """Record a message as it is sent."""
        if isinstance(message, Text):
            self._text += message.text
            self.sent += len(message.text)
        elif isinstance(message, Flush | Cancel | End):
            self._marks.append(_Mark(self.sent, message))

    def received(self, message: ServerMessage) -> None:
        """Record a message of the session (on the original offsets)."""
        match message:
            case SegmentStart():
                self._segment_ends[message.segment] = message.char_end
                self.next_segment = max(self.next_segment, message.segment + 1)
            case SegmentEnd():
                end = self._segment_ends.pop(message.segment, None)
                if end is not None:
                    self._settle(end)
            case Audio():
                self.next_seq = message.seq + 1
                self.next_sample = message.sample_start + self.frame_samples
            case Flushed():
                self._answered(Flush)
            case Cancelled():
                self._answered(Cancel)
                self._settle(message.unspoken_end)  # everything before the cancel was dropped
            case BackendSwitched():
                self.next_segment = max(self.next_segment, message.segment + 1)

    def replay(self) -> list[ClientMessage]:
        """The messages a new session needs, in order: the unanswered marks where they were
        sent, and the text not reported spoken around them (none before a pending cancel,
        which drops it)."""
        messages: list[ClientMessage] = []
        position = self._start()
        for mark in self._marks:
            if mark.offset > position:
                messages.append(Text(self._slice(position, mark.offset)))
                position = mark.offset
            message = mark.message
            if isinstance(message, Cancel):  # its position was on the old session's timeline
                message = Cancel(message.id)
            messages.append(message)
        if self.sent > position:
            messages.append(Text(self._slice(position, self.sent)))
        return messages

    def resumed_at(self) -> Shift:
        """The shift of a session resumed now with :meth:`replay`."""
        return Shift(self._start(), self.next_sample, self.next_seq, self.next_segment)

    def _start(self) -> int:
        cancels = [m.offset for m in self._marks if isinstance(m.message, Cancel)]
        return max([self.settled, *cancels])

    def _slice(self, start: int, end: int) -> str:
        base = self.sent - len(self._text)
        return self._text[start - base : end - base]

    def _settle(self, offset: int) -> None:
        if offset <= self.settled:
            return
        base = self.sent - len(self._text)
        self._text = self._text[max(0, offset - base) :]
        self.settled = offset

    def _answered(self, kind: type[Flush] | type[Cancel]) -> None:
        for index, mark in enumerate(self._marks):
            if isinstance(mark.message, kind):
                del self._marks[index]
                return
