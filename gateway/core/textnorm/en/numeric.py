"""Rules for numbers that are neither amounts nor dates: phone numbers, ordinals, decades,
versions and IP addresses, years, and every number left."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final

from gateway.core.textnorm.en.calendar import two_digit_year
from gateway.core.textnorm.en.common import (
    NUM,
    Context,
    piece,
    word_after,
    word_before,
    words,
)
from gateway.core.textnorm.en.data import (
    AFTER_YEAR,
    QUANTITY_CUES,
    SCALES,
    YEAR_CUES,
)
from gateway.core.textnorm.en.quantities import SIGNS
from gateway.core.textnorm.model import Replacement
from gateway.core.textnorm.numbers import digits, plural_of_number_word

Group = Sequence[Replacement]

# -- phone numbers -------------------------------------------------------------------------------

_PHONE_NANP: Final = re.compile(
    r"(?<![\w+.-])(?:(?P<country>\+?1)(?P<csep>[-.\s]))?(?P<area>\(\d{3}\)\s?|\d{3}[-.])"
    r"(?P<exchange>\d{3})[-.](?P<line>\d{4})(?![\w]|[-.]\d)",
    re.ASCII,
)
_PHONE_LOCAL: Final = re.compile(r"(?<![\w.,-])\d{3}-\d{4}(?![\w]|[-.]\d)", re.ASCII)
_PHONE_INTERNATIONAL: Final = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[\s.-]\(?\d{1,8}\)?){2,5}(?![\w]|[-.]\d)", re.ASCII
)
_DIGIT_GROUP: Final = re.compile(r"\d+|[^\d]+")


def _phone_group(text: str, start: int, end: int) -> list[Replacement]:
    """Digits read one by one, groups separated by a pause (","), brackets dropped."""
    group: list[Replacement] = []
    for part in _DIGIT_GROUP.finditer(text[start:end]):
        chunk = part.group()
        at = start + part.start()
        if chunk.isdigit():
            words = digits(chunk)
            group.append(Replacement(at, at + len(chunk), words, "phone"))
        elif chunk == "+":
            group.append(Replacement(at, at + 1, "plus", "phone"))
        elif at == start or at + len(chunk) == end:
            group.append(Replacement(at, at + len(chunk), "", "phone"))  # "(" before the area
        else:  # between two digit groups: a pause
            spoken = ", " if any(c.isspace() for c in chunk) else ","
            group.append(Replacement(at, at + len(chunk), spoken, "phone"))
    return group


def phones(text: str, ctx: Context) -> Iterator[Group]:
    """ "555-123-4567" -> "five five five, one two three, four five six seven"."""
    del ctx
    for pattern in (_PHONE_NANP, _PHONE_INTERNATIONAL, _PHONE_LOCAL):
        for match in pattern.finditer(text):
            if pattern is _PHONE_INTERNATIONAL and sum(c.isdigit() for c in match.group()) < 8:
                continue
            yield _phone_group(text, match.start(), match.end())


_ORDINAL: Final = re.compile(
    r"(?<![\w.,])(?P<num>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?P<suffix>st|nd|rd|th|ST|ND|RD|TH)(?!\w)"
)
_DECADE: Final = re.compile(r"(?<![\w.,'’])(?P<year>1[0-9][0-9]0|20[0-9]0)(?P<s>['’]?s)(?!\w)")
_SHORT_DECADE: Final = re.compile(r"(?<![\w.,])(?P<apos>['’])?(?P<tens>[1-9]0)(?P<s>['’]?s)(?!\w)")


def ordinals(text: str, ctx: Context) -> Iterator[Group]:
    """ "1st" -> "first", "22nd" -> "twenty-second"."""
    for match in _ORDINAL.finditer(text):
        value = int(match.group("num").replace(",", ""))
        yield (Replacement(match.start(), match.end(), ctx.numbers.ordinal(value), "ordinal"),)


def decades(text: str, ctx: Context) -> Iterator[Group]:
    """ "1990s" -> "nineteen nineties", "the '80s" -> "eighties", "2000s" -> "two thousands"."""
    for match in _DECADE.finditer(text):
        words = plural_of_number_word(ctx.numbers.year(int(match.group("year"))))
        yield (Replacement(match.start(), match.end(), words, "decade"),)
    for match in _SHORT_DECADE.finditer(text):
        words = plural_of_number_word(ctx.numbers.cardinal(int(match.group("tens"))))
        yield (Replacement(match.start(), match.end(), words, "decade"),)


# -- versions, IP addresses, years, plain numbers ------------------------------------------------

_IP: Final = re.compile(
    r"(?<![\w.])(?P<ip>[0-9]{1,3}(?:\.[0-9]{1,3}){3})(?P<port>:[0-9]{1,5})?(?![\w]|\.[0-9])"
)
_VERSION: Final = re.compile(
    r"(?<![\w.])(?P<v>[vV](?:er\.?)?)?(?P<num>[0-9]+(?:\.[0-9]+)+)(?![\w]|\.[0-9])"
)
_SHORT_VERSION: Final = re.compile(r"(?<![\w.])(?P<v>[vV])(?P<num>[0-9]+)(?![\w]|\.[0-9])")
_VERSION_CUES: Final = words(
    """version versions python ios android release releases firmware kernel java node ubuntu
    macos debian fedora rust go php ruby perl linux v ver rev revision update patch build
    chrome firefox safari edge windows gpt api protocol http tls ssl bluetooth usb wifi"""
)


def versions(text: str, ctx: Context) -> Iterator[Group]:
    """ "2.0.1" -> "two point zero point one", "v1.10" -> "version one point ten",
    "Python 3.11" -> "three point eleven", "192.168.1.1" (an address) digit by digit."""
    for match in _IP.finditer(text):
        octets = match.group("ip").split(".")
        if all(int(octet) <= 255 for octet in octets):
            spoken = " dot ".join(digits(octet) for octet in octets)
            if match.group("port"):
                spoken += f" port {ctx.number(match.group('port')[1:])}"
            yield (Replacement(match.start(), match.end(), spoken, "ip"),)
    for match in _VERSION.finditer(text):
        parts = match.group("num").split(".")
        cue = word_before(text, match.start()).lower()
        if len(parts) == 2 and not match.group("v") and cue not in _VERSION_CUES:
            continue
        spoken = " point ".join(ctx.number(part) for part in parts)
        group = [piece(match, "num", spoken, "version")]
        if match.group("v"):
            group.insert(0, piece(match, "v", "version", "version"))
        yield group
    for match in _SHORT_VERSION.finditer(text):
        yield (
            piece(match, "v", "version", "version"),
            piece(match, "num", ctx.number(match.group("num")), "version"),
        )


_YEAR: Final = re.compile(
    r"(?<![\w.,$£€¥#/:'’+-])(?P<year>1[0-9]{3}|20[0-9]{2})(?![\w%°]|[.,:/][0-9]|['’]s)"
)


_FISCAL_YEAR: Final = re.compile(r"\b(?P<prefix>FY|CY)(?P<year>[0-9]{4}|[0-9]{2})\b")
_MODEL_NUMBER: Final = re.compile(
    r"(?<![\w.,$£€¥#/:'’+-])(?P<num>[1-9][0-9]{3})(?![\w%°]|[.,:/][0-9]|['’]s)"
)


def years(text: str, ctx: Context) -> Iterator[Group]:
    """A four-digit number from 1000 to 2099 read as a year ("in 1999" -> "nineteen
    ninety-nine") unless its context makes it a quantity ("1999 people"); "FY2024"; a
    four-digit model number after a capitalized name is read in pairs too ("RTX 4090" ->
    "forty ninety")."""
    for match in _FISCAL_YEAR.finditer(text):
        year = match.group("year")
        spoken = ctx.numbers.year(int(year)) if len(year) == 4 else two_digit_year(ctx, year)
        yield (
            piece(match, "prefix", ctx.spell(match.group("prefix")), "year"),
            piece(match, "year", spoken, "year"),
        )
    for match in _MODEL_NUMBER.finditer(text):
        before = word_before(text, match.start())
        value = int(match.group("num"))
        if 2 <= len(before) <= 5 and before.isupper() and before.isalpha() and value % 100:
            yield (piece(match, "num", ctx.numbers.year(value), "number"),)
    for match in _YEAR.finditer(text):
        before = word_before(text, match.start()).lower()
        after = word_after(text, match.end())
        if before in YEAR_CUES:
            pass
        elif before in QUANTITY_CUES or (
            after and after[0].islower() and after.lower() not in AFTER_YEAR
        ):
            continue
        yield (piece(match, "year", ctx.numbers.year(int(match.group("year"))), "year"),)


_HASH_NUMBER: Final = re.compile(r"(?<![\w&#])#(?P<num>[0-9]+)(?!\w)")
_DIMENSIONS: Final = re.compile(
    rf"(?<![\w.,])(?P<a>{NUM})(?P<x1>\s?[x×]\s?)(?P<b>{NUM})"
    rf"(?:(?P<x2>\s?[x×]\s?)(?P<c>{NUM}))?(?![\w]|\.[0-9])"
)
_TIMES: Final = re.compile(rf"(?<![\w.,])(?P<num>{NUM})(?P<x>[x×])(?![\w])")
_SIGNED: Final = re.compile(
    rf"(?:^|(?<=[\s(\[]))(?P<sign>[-\u2212+±~≈<>≤≥])(?P<num>{NUM})(?![\w]|\.[0-9])"
)
_RATIO: Final = re.compile(
    r"(?<![\w:.,])(?P<a>[0-9]{1,4})(?P<colon>:)(?P<b>[0-9]{1,4})(?![\w:]|[.,][0-9])"
)
_SCALED: Final = re.compile(rf"(?<![\w.,])(?P<num>{NUM})(?P<scale>M|B|T|bn|mn|tn)(?![\w])")
_NUMBER: Final = re.compile(rf"(?<![0-9,.])(?P<num>{NUM})(?![0-9])")


def numbers(text: str, ctx: Context) -> Iterator[Group]:
    """Every number left: "#1" -> "number one", "1920x1080", "3x" -> "three times",
    "-5" -> "minus five", "1,234" and "3.14"; leading zeros and ten or more digits without
    commas (codes, IDs) are read digit by digit."""
    for match in _HASH_NUMBER.finditer(text):
        yield (
            Replacement(
                match.start(), match.end(), f"number {ctx.number(match.group('num'))}", "number"
            ),
        )
    for match in _DIMENSIONS.finditer(text):
        group = [
            piece(match, "a", ctx.number(match.group("a")), "number"),
            piece(match, "x1", "by", "number"),
            piece(match, "b", ctx.number(match.group("b")), "number"),
        ]
        if match.group("c"):
            group.append(piece(match, "x2", "by", "number"))
            group.append(piece(match, "c", ctx.number(match.group("c")), "number"))
        yield group
    for match in _TIMES.finditer(text):
        yield (
            piece(match, "num", ctx.number(match.group("num")), "number"),
            piece(match, "x", "times", "number"),
        )
    for match in _SCALED.finditer(text):  # "70B parameters", "5M users" ("4K" stays)
        words = f"{ctx.number(match.group('num'))} {SCALES[match.group('scale')]}"
        yield (Replacement(match.start(), match.end(), words, "number"),)
    for match in _RATIO.finditer(text):  # times were claimed before: "16:9", "3:2"
        yield (
            piece(match, "a", ctx.number(match.group("a")), "number"),
            piece(match, "colon", "to", "number"),
            piece(match, "b", ctx.number(match.group("b")), "number"),
        )
    for match in _SIGNED.finditer(text):
        words = f"{SIGNS[match.group('sign')]} {_plain(ctx, match.group('num'))}"
        yield (Replacement(match.start(), match.end(), words, "number"),)
    for match in _NUMBER.finditer(text):
        yield (piece(match, "num", _plain(ctx, match.group("num")), "number"),)


def _plain(ctx: Context, number: str) -> str:
    if "," not in number and "." not in number and len(number) >= 10:
        return digits(number)
    return ctx.number(number)
