"""Rules for amounts: money, measures (feet and inches), units and percentages, ranges,
fractions."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Final

from gateway.core.textnorm.en.calendar import numeric_date, two_digit_year
from gateway.core.textnorm.en.common import (
    NUM,
    Context,
    join_alternatives,
    piece,
    word_before,
    words,
)
from gateway.core.textnorm.en.data import (
    CURRENCIES,
    DATE_CUES,
    MONTHS,
    PER_UNITS,
    SCALES,
    UNITS,
    UNITS_TOUCHING_ONLY,
)
from gateway.core.textnorm.model import Replacement
from gateway.core.textnorm.numbers import plural_of_number_word

Group = Sequence[Replacement]

SIGNS: Final = {
    "-": "minus",
    "\u2212": "minus",
    "+": "plus",
    "±": "plus or minus",
    "~": "about",
    "≈": "about",
    "<": "less than",
    ">": "more than",
    "≤": "at most",
    "≥": "at least",
}
_SIGN: Final = r"(?P<sign>[-\u2212+±~≈<>≤≥])?"


def _is_one(number: str) -> bool:
    return number.replace(",", "") == "1"


# -- money ---------------------------------------------------------------------------------------

_SYMBOL: Final = r"(?P<sym>US\$|[$€£¥₹₩₽])"
_SCALE_WORDS: Final = join_alternatives(list(SCALES))
_PER: Final = join_alternatives(list(PER_UNITS))
_MONEY: Final = re.compile(
    rf"(?<![\w$€£¥₹₩₽.,])(?P<neg>[-\u2212])?{_SYMBOL}\s?(?P<num>{NUM})"
    rf"(?:(?P<scale_sp>(?:\s(?=[A-Za-z]{{2}}))?)(?P<scale>{_SCALE_WORDS})(?![\w]))?"
    rf"(?:(?P<dash>\s?[-–]\s?)(?P<sym2>US\$|[$€£¥₹₩₽])?(?P<num2>{NUM})"
    rf"(?:(?P<scale2_sp>(?:\s(?=[A-Za-z]{{2}}))?)(?P<scale2>{_SCALE_WORDS})(?![\w]))?)?"
    rf"(?:/(?P<per>{_PER}))?(?![\w]|[.,][0-9])"
)
_CODES: Final = join_alternatives([code for code in CURRENCIES if code.isalpha()])
_MONEY_CODE_AFTER: Final = re.compile(
    rf"(?<![\w.,])(?P<num>{NUM})(?:(?:\s(?=[A-Za-z]{{2}}))?(?P<scale>{_SCALE_WORDS}))?\s(?P<code>{_CODES})(?!\w)"
)
_MONEY_CODE_BEFORE: Final = re.compile(
    rf"(?<![\w.,])(?P<code>{_CODES})\s?(?P<num>{NUM})(?:(?:\s(?=[A-Za-z]{{2}}))?(?P<scale>{_SCALE_WORDS}))?(?![\w]|[.,][0-9])"
)


def _amount(ctx: Context, currency: str, number: str, scale: str | None) -> tuple[str, str]:
    """(the number read, the unit after it) for an amount: ("five", "dollars"),
    ("one thousand two hundred thirty-four", "dollars and fifty-six cents")."""
    unit, units, cent, cents = CURRENCIES[currency]
    if scale:
        return f"{ctx.number(number)} {SCALES[scale]}", units
    whole, _, fraction = number.replace(",", "").partition(".")
    if len(fraction) == 2 and cent != unit:
        minor = int(fraction)
        major = int(whole or "0")
        minor_words = f"{ctx.numbers.cardinal(minor)} {cent if minor == 1 else cents}"
        if major == 0 and minor:
            return minor_words, ""
        major_words = ctx.numbers.cardinal(major)
        major_unit = unit if major == 1 else units
        if minor == 0:
            return major_words, major_unit
        return major_words, f"{major_unit} and {minor_words}"
    if fraction:
        return ctx.number(number), units
    return ctx.number(number), unit if _is_one(number) else units


def money(text: str, ctx: Context) -> Iterator[Group]:
    """ "$1,234.56" -> "one thousand two hundred thirty-four dollars and fifty-six cents",
    "$2.5M" -> "two point five million dollars", "$5-10" -> "five to ten dollars",
    "$9.99/month" -> "nine dollars and ninety-nine cents per month", "500 EUR"."""
    for match in _MONEY.finditer(text):
        sym = match.group("sym")
        per = f" per {PER_UNITS[match.group('per')]}" if match.group("per") else ""
        negative = "minus " if match.group("neg") else ""
        if match.group("num2"):
            if match.group("sym2") not in (None, sym):
                continue
            first, _ = _amount(ctx, sym, match.group("num"), match.group("scale"))
            second, unit = _amount(ctx, sym, match.group("num2"), match.group("scale2"))
            if " and " in unit:  # "$5.50-$7.25": read each amount whole
                first = " ".join(_amount(ctx, sym, match.group("num"), match.group("scale")))
                second = " ".join((second, unit))
                unit = ""
            elif not match.group("scale2") and match.group("scale"):
                unit = f"{SCALES[match.group('scale')]} {unit}"
            end = match.end("num2")
            if match.group("scale2"):
                end = match.end("scale2")
            yield (
                Replacement(match.start(), match.end("num"), negative + first, "money"),
                *(
                    [Replacement(match.start("scale"), match.end("scale"), "", "money")]
                    if match.group("scale") and match.group("scale2") is None
                    else []
                ),
                piece(match, "dash", "to", "money"),
                Replacement(
                    match.start("sym2") if match.group("sym2") else match.start("num2"),
                    end,
                    f"{second} {unit}".strip() + per,
                    "money",
                ),
                *([Replacement(end, match.end(), "", "money")] if match.end() > end else []),
            )
            continue
        number, unit = _amount(ctx, sym, match.group("num"), match.group("scale"))
        if match.group("scale") and match.group("scale_sp"):  # "$2.5 billion": two words
            scale_word = SCALES[match.group("scale")]
            yield (
                Replacement(
                    match.start(),
                    match.end("num"),
                    negative + number.removesuffix(" " + scale_word),
                    "money",
                ),
                Replacement(
                    match.start("scale"), match.end(), f"{scale_word} {unit}{per}", "money"
                ),
            )
            continue
        spoken = f"{negative}{number} {unit}".strip() + per
        yield (Replacement(match.start(), match.end(), spoken, "money"),)
    for pattern in (_MONEY_CODE_AFTER, _MONEY_CODE_BEFORE):
        for match in pattern.finditer(text):
            number, unit = _amount(
                ctx, match.group("code"), match.group("num"), match.group("scale")
            )
            if pattern is _MONEY_CODE_AFTER:
                end = match.end("scale") if match.group("scale") else match.end("num")
                yield (
                    Replacement(match.start(), end, number, "money"),
                    piece(match, "code", unit, "money"),
                )
            else:
                yield (
                    Replacement(match.start(), match.end(), f"{number} {unit}".strip(), "money"),
                )


# -- feet and inches, units, percentages, ranges -------------------------------------------------

_FEET_INCHES: Final = re.compile(
    r"(?<![\w.'’])(?P<feet>[0-9]{1,2})(?P<ft>['’′])(?:\s?(?P<inches>[0-9]{1,2}(?:\.[0-9]+)?)"
    r"(?P<in>\"|”|″|''))?(?![\w'’])"
)
_INCHES: Final = re.compile(rf"(?<![\w.,])(?P<num>{NUM})(?P<in>″)")
_UNIT_NAMES: Final = join_alternatives([*UNITS, "%"])
_UNIT: Final = re.compile(
    rf"(?<![\w.,/]){_SIGN}(?P<num>{NUM})(?P<sp>\s?)(?P<unit>{_UNIT_NAMES})"
    rf"(?:/(?P<per>{_PER}))?(?![\w²³]|\.[0-9])"
)
# "2 L of water", "500 g of flour": a lone letter after a number is a unit when "of" follows.
_MEASURE_OF: Final = re.compile(r"\s+of\b")
_RANGE: Final = re.compile(
    rf"(?<![\w.,/:$€£-])(?P<a>{NUM})(?P<dash>\s?[–—]\s?|-)(?P<b>{NUM})"
    rf"(?:(?P<sp>\s?)(?P<unit>{_UNIT_NAMES})(?:/(?P<per>{_PER}))?)?"
    r"(?![\w]|[-–/.:][0-9])"
)


def _unit_words(ctx: Context, unit: str, number: str, per: str | None) -> str:
    del ctx
    if unit == "%":
        words = "percent"
    else:
        singular, plural = UNITS[unit]
        words = singular if _is_one(number) else plural
    if per:
        words += f" per {PER_UNITS[per]}"
    return words


def measures(text: str, ctx: Context) -> Iterator[Group]:
    """ "5'11\"" -> "five feet eleven inches"; "6′" -> "six feet"."""
    for match in _FEET_INCHES.finditer(text):
        feet = match.group("feet")
        group = [
            Replacement(
                match.start(),
                match.end("ft"),
                f"{ctx.number(feet)} {'foot' if _is_one(feet) else 'feet'}",
                "measure",
            )
        ]
        if match.group("inches"):
            inches = match.group("inches")
            group.append(
                Replacement(
                    match.start("inches"),
                    match.end(),
                    f"{ctx.number(inches)} {'inch' if _is_one(inches) else 'inches'}",
                    "measure",
                )
            )
        elif match.group("ft") != "′" and not re.match(
            r"\s*(?:tall|long|high|wide|deep|[,.;]|$)", text[match.end() :]
        ):
            continue  # a lone "5'" is too often a quote mark
        yield group
    for match in _INCHES.finditer(text):
        number = match.group("num")
        yield (
            Replacement(
                match.start(),
                match.end(),
                f"{ctx.number(number)} {'inch' if _is_one(number) else 'inches'}",
                "measure",
            ),
        )


_UNIT_RANGE: Final = re.compile(
    rf"(?<![\w.,/:$€£-])(?P<a>{NUM})(?P<sp1>\s?)(?P<u1>{_UNIT_NAMES})(?P<dash>\s?[–—]\s?|-)"
    rf"(?P<b>{NUM})(?P<sp2>\s?)(?P<u2>{_UNIT_NAMES})(?![\w²³]|\.[0-9])"
)


def ranges(text: str, ctx: Context) -> Iterator[Group]:
    """ "2019-2021" -> "twenty nineteen to twenty twenty-one", "5-10 km" -> "five to ten
    kilometers", "10-15%" -> "ten to fifteen percent", "2019-21", "2024-05" (a month),
    "20°C–25°C" -> "twenty degrees Celsius to twenty-five degrees Celsius"."""
    for match in _UNIT_RANGE.finditer(text):
        if any(
            match.group(f"u{i}") in UNITS_TOUCHING_ONLY and match.group(f"sp{i}") for i in (1, 2)
        ):
            continue
        yield (
            piece(match, "a", ctx.number(match.group("a")), "unit"),
            piece(match, "u1", _unit_words(ctx, match.group("u1"), match.group("a"), None), "unit"),
            piece(match, "dash", "to", "range"),
            piece(match, "b", ctx.number(match.group("b")), "unit"),
            piece(match, "u2", _unit_words(ctx, match.group("u2"), match.group("b"), None), "unit"),
        )
    for match in _RANGE.finditer(text):
        a, b, unit = match.group("a"), match.group("b"), match.group("unit")
        if unit and unit in UNITS_TOUCHING_ONLY and match.group("sp"):
            unit = None
        kind = "range"
        if re.fullmatch(r"[0-9]{4}", a) and re.fullmatch(r"[0-9]{4}|[0-9]{2}", b) and not unit:
            first = int(a)
            if len(b) == 2 and b.startswith("0") and 1 <= int(b) <= 12 and int(b) <= first % 100:
                yield (
                    Replacement(
                        match.start(),
                        match.end(),
                        f"{MONTHS[int(b) - 1]} {ctx.numbers.year(first)}",
                        "date",
                    ),
                )
                continue
            if len(b) == 2 and int(b) <= first % 100:
                continue
            first_words = ctx.numbers.year(first) if 1000 <= first <= 2099 else ctx.number(a)
            second_value = int(b)
            if len(b) == 2:
                second_words = two_digit_year(ctx, b)
            elif 1000 <= second_value <= 2099:
                second_words = ctx.numbers.year(second_value)
            else:
                second_words = ctx.number(b)
            kind = "year"
        else:
            first_words, second_words = ctx.number(a), ctx.number(b)
        group = [
            Replacement(match.start("a"), match.end("a"), first_words, kind),
            piece(match, "dash", "to", kind),
            Replacement(match.start("b"), match.end("b"), second_words, kind),
        ]
        if unit:
            plural = "2" if unit != "%" else b
            end = match.end("per") if match.group("per") else match.end("unit")
            group.append(
                Replacement(
                    match.start("unit"),
                    end,
                    _unit_words(ctx, unit, plural, match.group("per")),
                    "unit",
                )
            )
        yield group


def units(text: str, ctx: Context) -> Iterator[Group]:
    """ "5 km" -> "five kilometers", "72°F", "3 GB", "50%", "-5°C", "$"-less "/h" rates."""
    for match in _UNIT.finditer(text):
        unit = match.group("unit")
        if (
            unit in UNITS_TOUCHING_ONLY
            and match.group("sp")
            and not _MEASURE_OF.match(text, match.end())
        ):
            continue
        number = match.group("num")
        sign = match.group("sign")
        words = ctx.number(number)
        if sign:
            words = f"{SIGNS[sign]} {words}"
        end = match.end("per") if match.group("per") else match.end("unit")
        kind = "percent" if unit == "%" else "unit"
        yield (
            Replacement(match.start(), match.end("num"), words, kind),
            Replacement(
                match.start("unit"), end, _unit_words(ctx, unit, number, match.group("per")), kind
            ),
        )


# -- fractions, ordinals, decades ----------------------------------------------------------------

_FRACTION: Final = re.compile(
    r"(?<![\w/.,:-])(?:(?P<whole>[0-9]+)\s)?(?P<n>[0-9]{1,3}(?:\.[0-9]+)?)/(?P<d>[0-9]{1,3})"
    r"(?![\w/]|[.,][0-9])"
)
_VULGAR: Final = re.compile(
    r"(?<![\w.,])(?P<whole>[0-9]+)?(?P<space>\s?)(?P<frac>[½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅐⅛⅜⅝⅞⅑⅒])"
)
_UNIT_AFTER: Final = re.compile(rf"(?P<sp>\s?)(?P<unit>{_UNIT_NAMES})(?![\w²³])")
_SCORE_CUES: Final = words("scored score scores rated rating rate got gets grade graded")
_SPECIAL_FRACTIONS: Final = {"24/7": "twenty-four seven", "9/11": "nine eleven"}


def fraction_words(ctx: Context, numerator: int, denominator: int, *, mixed: bool) -> str:
    """ "three quarters", "one half" ("a half" after a whole number), "five over one hundred
    twenty"."""
    if denominator == 0 or numerator > denominator or denominator > 100 or denominator == 1:
        return f"{ctx.numbers.cardinal(numerator)} over {ctx.numbers.cardinal(denominator)}"
    if denominator == 2:
        name = "half"
    elif denominator == 4:
        name = "quarter"
    else:
        name = ctx.numbers.ordinal(denominator)
    if numerator == 1:
        return f"a {name}" if mixed and denominator in (2, 4) else f"one {name}"
    return f"{ctx.numbers.cardinal(numerator)} {plural_of_number_word(name)}"


def _unit_after(text: str, ctx: Context, end: int, *, plural: bool) -> list[Replacement]:
    """The unit right after a fraction ("1/2 tsp"), read singular or plural."""
    match = _UNIT_AFTER.match(text, end)
    if not match or (match.group("unit") in UNITS_TOUCHING_ONLY and match.group("sp")):
        return []
    return [
        piece(
            match,
            "unit",
            _unit_words(ctx, match.group("unit"), "2" if plural else "1", None),
            "unit",
        )
    ]


def fractions(text: str, ctx: Context) -> Iterator[Group]:
    """ "3/4" -> "three quarters", "1 1/2" -> "one and a half", "½"; "on 3/4" is a date;
    "scored 98/100" and "7.5/10" are "out of"."""
    for match in _FRACTION.finditer(text):
        cue = word_before(text, match.start()).lower()
        frac_start = match.start("n")
        if "." in match.group("n") or (cue in _SCORE_CUES and not match.group("whole")):
            spoken = f"{ctx.number(match.group('n'))} out of {ctx.number(match.group('d'))}"
            yield (Replacement(frac_start, match.end(), spoken, "fraction"),)
            continue
        n, d = int(match.group("n")), int(match.group("d"))
        written = f"{match.group('n')}/{match.group('d')}"
        if written in _SPECIAL_FRACTIONS or n == d:
            spoken = (
                _SPECIAL_FRACTIONS.get(written)
                or f"{ctx.number(match.group('n'))} {ctx.number(match.group('d'))}"
            )
            yield (Replacement(frac_start, match.end(), spoken, "fraction"),)
            continue
        if not match.group("whole") and cue in DATE_CUES:
            spoken_date = numeric_date(ctx, n, d, None)
            if spoken_date:
                yield (Replacement(match.start(), match.end(), spoken_date, "date"),)
                continue
        whole = match.group("whole")
        if whole and n < d:
            yield (
                Replacement(
                    match.start("whole"), match.end("whole"), f"{ctx.number(whole)} and", "fraction"
                ),
                Replacement(
                    frac_start, match.end(), fraction_words(ctx, n, d, mixed=True), "fraction"
                ),
                *_unit_after(text, ctx, match.end(), plural=True),
            )
        elif not whole:
            yield (
                Replacement(
                    frac_start, match.end(), fraction_words(ctx, n, d, mixed=False), "fraction"
                ),
                *_unit_after(text, ctx, match.end(), plural=n >= d),
            )
    for match in _VULGAR.finditer(text):
        name = unicodedata.name(match.group("frac")).removeprefix("VULGAR FRACTION ").lower()
        if match.group("whole"):
            name = re.sub(r"^one (half|quarter)$", r"a \1", name)
            yield (
                Replacement(
                    match.start("whole"),
                    match.end("whole"),
                    f"{ctx.number(match.group('whole'))} and",
                    "fraction",
                ),
                piece(match, "frac", name, "fraction"),
            )
        else:
            yield (piece(match, "frac", name, "fraction"),)
