"""Text as an LLM writes it -> text a speech engine should read, keeping the character map.

LLM output is full of Markdown (``**bold**``, ``# headings``, backticks, bullets) that phonemizers
read aloud as "asterisk" or "hash", and of currency amounts they read in the wrong order
("$4.50" -> "dollar four point five zero"). :func:`speakable` rewrites those and returns, for
every piece of the spoken text, the span of the original text it came from, so word timings can
later be mapped back to exactly what the client sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["Piece", "speakable"]


@dataclass(frozen=True, slots=True)
class Piece:
    """``spoken`` replaces the original characters ``[start, end)``."""

    start: int
    end: int
    spoken: str
    text_of_original: str = ""  # the original characters, to tell unchanged pieces apart


_MARKUP: Final = re.compile(
    r"(?m)(?:^[ \t]*(?:#{1,6}|>|[-*+])[ \t]+)"  # heading, quote and bullet markers
    r"|(?<!\d)\*{1,3}|\*{1,3}(?!\d)"  # emphasis, but not 2*3
    r"|(?<!\w)_{1,3}|_{1,3}(?!\w)|`+|~~"  # emphasis, code, strike-through
)
_MONEY: Final = re.compile(r"([$€£])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{2}))?(?!\d)")
_DECIMAL: Final = re.compile(r"(?<![\d.])\d+(?:\.\d+)+(?![\d.]\d)")
_CURRENCY: Final = {"$": ("dollar", "cent"), "€": ("euro", "cent"), "£": ("pound", "penny")}


def speakable(text: str) -> list[Piece]:
    """Split ``text`` into pieces covering it exactly, with the text to speak for each."""
    edits: list[Piece] = []
    for match in _MONEY.finditer(text):
        edits.append(Piece(match.start(), match.end(), _money(*match.groups()), match.group()))
    for match in _DECIMAL.finditer(text):
        if not _overlaps(match.start(), match.end(), edits):
            edits.append(Piece(match.start(), match.end(), _decimal(match.group()), match.group()))
    for match in _MARKUP.finditer(text):
        if not _overlaps(match.start(), match.end(), edits):
            spoken = " " if "\n" not in match[0] else ""
            edits.append(Piece(match.start(), match.end(), spoken, match.group()))
    return _fill(text, sorted(edits, key=lambda piece: piece.start))


def _overlaps(start: int, end: int, edits: list[Piece]) -> bool:
    return any(edit.start < end and start < edit.end for edit in edits)


def _decimal(number: str) -> str:
    """ "3.14" -> "3 point 1 4", "2.0.1" -> "2 point 0 point 1" (phonemizers split at the dot)."""
    whole, *fractions = number.split(".")
    if len(fractions) == 1:
        return f"{whole} point {' '.join(fractions[0])}"
    return " point ".join([whole, *fractions])


def _money(symbol: str, whole: str, cents: str | None) -> str:
    unit, small = _CURRENCY[symbol]
    amount = int(whole.replace(",", ""))
    spoken = f"{whole} {unit}{'' if amount == 1 else 's'}"
    if cents and int(cents):
        plural = "pence" if small == "penny" else "cents"
        spoken += f" {int(cents)} {small if int(cents) == 1 else plural}"
    return spoken


def _fill(text: str, edits: list[Piece]) -> list[Piece]:
    pieces: list[Piece] = []
    cursor = 0
    for edit in edits:
        if edit.start > cursor:
            pieces.append(
                Piece(cursor, edit.start, text[cursor : edit.start], text[cursor : edit.start])
            )
        pieces.append(edit)
        cursor = edit.end
    if cursor < len(text):
        pieces.append(Piece(cursor, len(text), text[cursor:], text[cursor:]))
    return pieces
