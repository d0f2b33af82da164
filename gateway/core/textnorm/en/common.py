"""What the English rules share: the context (settings resolved for a dialect) and helpers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gateway.core.textnorm.model import Replacement
from gateway.core.textnorm.numbers import NumberWords, read_decimal
from gateway.core.textnorm.settings import CodeBlocks, DateOrder, EmojiMode, Settings

# A number as written: 1,234,567.89 / 1234.5 / .5 (digits ASCII only).
NUM: Final = r"(?:(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)"
_WORD_BEFORE: Final = re.compile(r"([A-Za-z][\w'’.-]*)[\s\"'“‘(\[]*$")
_WORD_AFTER: Final = re.compile(r"^[\s\"'”’)\]&]*([A-Za-z][\w'’-]*)")
_CLOSERS: Final = "\"'”’»)]}*_"


@dataclass(frozen=True, slots=True)
class Context:
    """Settings resolved for one English dialect."""

    language: str
    settings: Settings
    numbers: NumberWords
    date_order: DateOrder
    emoji: EmojiMode
    code_blocks: CodeBlocks
    acronyms: frozenset[str]
    initialisms: frozenset[str]
    letter_joint: str

    def spell(self, letters: str) -> str:
        """Letters read one by one: "FBI" -> "F-B-I" (or "F B I")."""
        return self.letter_joint.join(char.upper() for char in letters if char.isalnum())

    def number(self, text: str) -> str:
        return read_decimal(self.numbers, text)


def piece(match: re.Match[str], group: int | str, spoken: str, kind: str) -> Replacement:
    """A replacement for one group of a match."""
    return Replacement(match.start(group), match.end(group), spoken, kind)


def word_before(text: str, position: int) -> str:
    """The word just before ``position`` (skipping spaces and opening marks), as written."""
    match = _WORD_BEFORE.search(text, max(0, position - 40), position)
    return match.group(1).rstrip(".") if match else ""


def word_after(text: str, position: int) -> str:
    """The word just after ``position`` (skipping spaces and closing marks), as written."""
    match = _WORD_AFTER.match(text[position : position + 40])
    return match.group(1) if match else ""


def at_end(text: str, position: int) -> bool:
    """Only closing marks and whitespace from ``position`` on."""
    return not text[position:].strip().strip(_CLOSERS).strip()


def capital_follows(text: str, position: int) -> bool:
    """Whitespace then a capitalized word ("The", "I"; not "EST", "GDP"): a new sentence may
    start at ``position``."""
    rest = text[position:]
    stripped = rest.lstrip()
    if len(stripped) == len(rest) or not stripped[:1].isupper():
        return False
    return len(stripped) == 1 or not stripped[1].isalpha() or stripped[1].islower()


def abbreviation_dot(
    text: str, dot: int, kind: str, *, terminal: bool = False
) -> list[Replacement]:
    """The dot after an abbreviation: dropped (so it is not read as a full stop), but kept
    where it ends the segment, or where it may end a sentence (``terminal``) and a capital
    follows."""
    if dot >= len(text) or text[dot] != ".":
        return []
    if at_end(text, dot + 1) or (terminal and capital_follows(text, dot + 1)):
        return []
    return [Replacement(dot, dot + 1, "", kind)]


def join_alternatives(words: Sequence[str]) -> str:
    """A regex alternation of literal words, longest first."""
    return "|".join(re.escape(word) for word in sorted(set(words), key=len, reverse=True))


def words(text: str) -> frozenset[str]:
    """A word list written as text."""
    return frozenset(text.split())
