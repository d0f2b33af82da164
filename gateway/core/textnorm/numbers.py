"""Numbers as English words, through a library (no hand-written number tables).

:class:`NumberWords` is the interface the English rules use. Two implementations:

* :class:`Num2Words` (default) wraps ``num2words`` (LGPL-2.1): cardinals, ordinals and its
  year reading ("nineteen oh-five", "twenty ten").
* :class:`InflectWords` wraps ``inflect`` (MIT), for deployments that want no LGPL code; it
  has no year reading, so years are built from its cardinals with the same pattern.

Both give US readings ("one hundred one") or, with ``and_word``, British ones ("one hundred
and one"); commas are dropped (they would be read as pauses).
"""

from __future__ import annotations

import functools
from typing import Final, Protocol

import inflect
from num2words import num2words

__all__ = [
    "InflectWords",
    "Num2Words",
    "NumberWords",
    "digits",
    "plural_of_number_word",
    "read_decimal",
]

_DIGIT_NAMES: Final = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)


class NumberWords(Protocol):
    """Integers as words."""

    def cardinal(self, value: int) -> str: ...

    def ordinal(self, value: int) -> str: ...

    def year(self, value: int) -> str: ...


def _tidy(words: str, *, and_word: bool) -> str:
    words = words.replace(",", "")
    if not and_word:
        words = words.replace(" and ", " ")
    return " ".join(words.split())


@functools.lru_cache(maxsize=8192)
def _num2words(value: int, to: str) -> str:
    return str(num2words(value, lang="en", to=to))


@functools.lru_cache(maxsize=1)
def _inflect_engine() -> inflect.engine:
    return inflect.engine()


@functools.lru_cache(maxsize=8192)
def _inflect(value: int, and_word: bool, ordinal: bool) -> str:
    engine = _inflect_engine()
    words = str(engine.number_to_words(str(value), andword="and" if and_word else ""))
    return str(engine.ordinal(words)) if ordinal else words


class Num2Words:
    """``num2words`` readings."""

    def __init__(self, *, and_word: bool = False) -> None:
        self._and = and_word

    def cardinal(self, value: int) -> str:
        return _tidy(_num2words(value, "cardinal"), and_word=self._and)

    def ordinal(self, value: int) -> str:
        return _tidy(_num2words(value, "ordinal"), and_word=self._and)

    def year(self, value: int) -> str:
        if not 1000 <= value <= 9999:
            return self.cardinal(value)
        return _tidy(_num2words(value, "year"), and_word=self._and)


class InflectWords:
    """``inflect`` readings; years built from cardinals as ``num2words`` reads them."""

    def __init__(self, *, and_word: bool = False) -> None:
        self._and = and_word

    def cardinal(self, value: int) -> str:
        return _tidy(_inflect(value, self._and, False), and_word=self._and)

    def ordinal(self, value: int) -> str:
        return _tidy(_inflect(value, self._and, True), and_word=self._and)

    def year(self, value: int) -> str:
        if not 1000 <= value <= 9999:
            return self.cardinal(value)
        high, low = divmod(value, 100)
        if high % 10 == 0 and low < 10:  # 2000, 2005, 1000: "two thousand (and) five"
            return self.cardinal(value)
        if low == 0:
            return f"{self.cardinal(high)} hundred"
        if low < 10:
            return f"{self.cardinal(high)} oh-{self.cardinal(low)}"
        return f"{self.cardinal(high)} {self.cardinal(low)}"


def digits(text: str, *, zero: str = "zero") -> str:
    """Digit by digit: "4567" -> "four five six seven" (non-digits are skipped)."""
    return " ".join(
        zero if char == "0" else _DIGIT_NAMES[int(char)]
        for char in text
        if char.isascii() and char.isdigit()
    )


def read_decimal(words: NumberWords, text: str) -> str:
    """A number as written: "1,234" -> cardinal, "3.14" -> "three point one four",
    ".5" -> "point five", "007" -> "zero zero seven"."""
    whole, dot, fraction = text.replace(",", "").partition(".")
    negative = whole.startswith(("-", "\u2212"))
    whole = whole.lstrip("-\u2212")
    if not whole:
        spoken = ""
    elif (len(whole) > 1 and whole.startswith("0")) or len(whole) > 15:
        spoken = digits(whole)
    else:
        spoken = words.cardinal(int(whole))
    if dot and fraction:
        spoken = f"{spoken} point {digits(fraction)}".strip()
    return f"minus {spoken}" if negative else spoken


def plural_of_number_word(phrase: str) -> str:
    """The last word made plural: "nineteen ninety" -> "nineteen nineties", "third" ->
    "thirds", "half" -> "halves" (decades and fraction denominators)."""
    head, _, last = phrase.rpartition(" ")
    if last.endswith("y"):
        last = last[:-1] + "ies"
    elif last.endswith("f"):
        last = last[:-1] + "ves"
    elif last.endswith(("x", "s")):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}" if head else last
