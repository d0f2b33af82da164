"""Rules for dates and times: numeric and ISO dates in the locale's order, dates with month
names, clock times, time ranges."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator, Sequence
from typing import Final

from gateway.core.textnorm.en.common import (
    Context,
    abbreviation_dot,
    join_alternatives,
    piece,
    word_before,
)
from gateway.core.textnorm.en.data import (
    MONTH_ABBREVIATIONS,
    MONTHS,
)
from gateway.core.textnorm.model import Replacement

Group = Sequence[Replacement]

# -- dates ---------------------------------------------------------------------------------------

_MONTH_NAMES: Final = join_alternatives([*MONTHS, *MONTH_ABBREVIATIONS])
_ISO_DATE: Final = re.compile(
    r"(?<![\w./-])(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})(?![\w]|[-/.][0-9])"
)
_YMD_SLASH: Final = re.compile(
    r"(?<![\w./-])(?P<y>[0-9]{4})/(?P<m>[0-9]{1,2})/(?P<d>[0-9]{1,2})(?![\w]|[-/.][0-9])"
)
_NUMERIC_DATE: Final = re.compile(
    r"(?<![\w./-])(?P<a>[0-9]{1,2})(?P<sep>[/.-])(?P<b>[0-9]{1,2})(?P=sep)"
    r"(?P<y>[0-9]{4}|[0-9]{2})(?![\w]|[-/.][0-9])"
)
_MONTH_DAY: Final = re.compile(
    rf"\b(?P<month>{_MONTH_NAMES})(?P<dot>\.)?\s+(?P<day>[0-9]{{1,2}})(?P<suffix>st|nd|rd|th)?"
    r"(?:(?P<comma>,)?\s+(?P<year>[0-9]{4}))?(?![\w]|[.,:/][0-9])"
)
_DAY_MONTH: Final = re.compile(
    r"(?<![\w.,])(?P<day>[0-9]{1,2})(?P<suffix>st|nd|rd|th)?\s+(?P<of>of\s+)?"
    rf"(?P<month>{_MONTH_NAMES})(?P<dot>\.)?(?:,?\s+(?P<year>[0-9]{{4}}))?(?![\w]|[.,:/][0-9])"
)
_MONTH_YEAR: Final = re.compile(
    rf"\b(?P<month>{_MONTH_NAMES})(?P<dot>\.)?,?\s+(?P<year>[0-9]{{4}})(?![\w]|[.,:/][0-9])"
)


def _month_name(written: str) -> str:
    if written in MONTHS:
        return written
    return MONTHS[MONTH_ABBREVIATIONS[written] - 1]


def _valid(year: int | None, month: int, day: int) -> bool:
    if not 1 <= month <= 12 or day < 1:
        return False
    return day <= calendar.monthrange(year if year else 2000, month)[1]


def two_digit_year(ctx: Context, written: str) -> str:
    if written.startswith("0"):
        return f"oh {ctx.numbers.cardinal(int(written))}" if written != "00" else "oh oh"
    return ctx.numbers.cardinal(int(written))


def _numeric_date(ctx: Context, year: str | None, month: int, day: int) -> str:
    if year is None:
        year_words = ""
    elif len(year) == 2:
        year_words = " " + two_digit_year(ctx, year)
    else:
        year_words = " " + ctx.numbers.year(int(year))
    name = MONTHS[month - 1]
    if ctx.date_order == "dmy":
        return f"the {ctx.numbers.ordinal(day)} of {name}{year_words}"
    return f"{name} {ctx.numbers.ordinal(day)}{year_words}"


def numeric_date(ctx: Context, first: int, second: int, year: str | None) -> str | None:
    """A date written with numbers in the locale's order (or the only order that is valid)."""
    month, day = (first, second) if ctx.date_order == "mdy" else (second, first)
    year_value = int(year) if year and len(year) == 4 else None
    if not _valid(year_value, month, day):
        month, day = day, month
        if not _valid(year_value, month, day):
            return None
    return _numeric_date(ctx, year, month, day)


def dates(text: str, ctx: Context) -> Iterator[Group]:
    """ISO and numeric dates (locale order), and dates with month names."""
    for pattern in (_ISO_DATE, _YMD_SLASH):
        for match in pattern.finditer(text):
            y, m, d = (int(match.group(k)) for k in "ymd")
            if _valid(y, m, d):
                spoken = _numeric_date(ctx, match.group("y"), m, d)
                yield (Replacement(match.start(), match.end(), spoken, "date"),)
    for match in _NUMERIC_DATE.finditer(text):
        if match.group("sep") != "/" and len(match.group("y")) != 4:
            continue  # "1.2.3", "10-15-20": versions and ranges, not dates
        spoken_date = numeric_date(
            ctx, int(match.group("a")), int(match.group("b")), match.group("y")
        )
        if spoken_date:
            yield (Replacement(match.start(), match.end(), spoken_date, "date"),)
    for match in _MONTH_DAY.finditer(text):
        day = int(match.group("day"))
        month = MONTHS.index(_month_name(match.group("month"))) + 1
        year = int(match.group("year")) if match.group("year") else None
        if not _valid(year, month, day):
            continue
        group = [piece(match, "month", _month_name(match.group("month")), "date")]
        if match.group("dot"):
            group.append(piece(match, "dot", "", "date"))
        ordinal = ctx.numbers.ordinal(day)
        if ctx.date_order == "dmy":
            ordinal = f"the {ordinal}"
        group.append(
            Replacement(
                match.start("day"),
                match.end("suffix") if match.group("suffix") else match.end("day"),
                ordinal,
                "date",
            )
        )
        if year is not None:
            group.append(piece(match, "year", ctx.numbers.year(year), "date"))
        yield group
    for match in _DAY_MONTH.finditer(text):
        day = int(match.group("day"))
        month = MONTHS.index(_month_name(match.group("month"))) + 1
        year = int(match.group("year")) if match.group("year") else None
        if not _valid(year, month, day):
            continue
        of = "" if match.group("of") else " of"
        the = "" if word_before(text, match.start()).lower() == "the" else "the "
        day_end = match.end("suffix") if match.group("suffix") else match.end("day")
        group = [
            Replacement(match.start(), day_end, f"{the}{ctx.numbers.ordinal(day)}{of}", "date")
        ]
        group.append(piece(match, "month", _month_name(match.group("month")), "date"))
        if match.group("dot"):
            group.extend(abbreviation_dot(text, match.start("dot"), "date"))
        if year is not None:
            group.append(piece(match, "year", ctx.numbers.year(year), "date"))
        yield group
    for match in _MONTH_YEAR.finditer(text):
        year = int(match.group("year"))
        group = [piece(match, "month", _month_name(match.group("month")), "date")]
        if match.group("dot"):
            group.append(piece(match, "dot", "", "date"))
        group.append(piece(match, "year", ctx.numbers.year(year), "date"))
        yield group


# -- times ---------------------------------------------------------------------------------------


def _time_pattern(suffix: str) -> str:
    return (
        rf"(?P<h{suffix}>[0-9]{{1,2}})(?::(?P<m{suffix}>[0-9]{{2}})(?::(?P<s{suffix}>[0-9]{{2}}))?)?"
        rf"(?:(?P<sp{suffix}>\s?)(?P<ap{suffix}>(?P<apl{suffix}>[AaPp])(?P<apd{suffix}>\.?)[Mm]"
        rf"(?P<apdot{suffix}>\.)?))?"
    )


_TIME_END: Final = r"(?![\w:]|[.,][0-9])"
_TIME: Final = re.compile(rf"(?<![\w:.,$]){_time_pattern('')}{_TIME_END}")
_TIME_RANGE: Final = re.compile(
    rf"(?<![\w:.,$]){_time_pattern('1')}(?P<dash>\s?[-–]\s?|\s+to\s+){_time_pattern('2')}{_TIME_END}"
)

# "3.30 pm" (British): a dot between hour and minutes, only with am/pm after it.
_DOT_TIME: Final = re.compile(
    r"(?<![\w:.,$])(?P<h>[0-9]{1,2})\.(?P<m>[0-5][0-9])(?P<s>(?!))?"
    r"(?P<sp>\s?)(?P<ap>(?P<apl>[AaPp])(?P<apd>\.?)[Mm](?P<apdot>\.)?)(?![\w]|[.,][0-9])"
)


def _time_words(
    ctx: Context, hour: int, minute: int | None, second: int | None, meridiem: bool
) -> str | None:
    if meridiem and not 1 <= hour <= 12:
        return None
    if hour > 99 or (minute is not None and minute > 59) or (second is not None and second > 59):
        return None
    words = ctx.numbers.cardinal(hour)
    if minute is None or (minute == 0 and meridiem):
        pass
    elif minute == 0:
        words += " o'clock" if 1 <= hour <= 12 and not second else " hundred"
    elif minute < 10:
        words += f" oh {ctx.numbers.cardinal(minute)}"
    else:
        words += f" {ctx.numbers.cardinal(minute)}"
    if second:
        words += f" and {ctx.numbers.cardinal(second)} second{'' if second == 1 else 's'}"
    return words


def _time_group(
    text: str, ctx: Context, match: re.Match[str], suffix: str, *, allow_bare: bool
) -> list[Replacement] | None:
    hour = int(match.group(f"h{suffix}"))
    minute_text = match.group(f"m{suffix}")
    meridiem = match.group(f"ap{suffix}")
    if minute_text is None and meridiem is None and not allow_bare:
        return None
    if match.group(f"s{suffix}") and hour > 24:
        return None
    words = _time_words(
        ctx,
        hour,
        int(minute_text) if minute_text else None,
        int(match.group(f"s{suffix}")) if match.group(f"s{suffix}") else None,
        meridiem is not None,
    )
    if words is None:
        return None
    digits_end = (
        match.end(f"s{suffix}")
        if match.group(f"s{suffix}")
        else (match.end(f"m{suffix}") if minute_text else match.end(f"h{suffix}"))
    )
    group = [Replacement(match.start(f"h{suffix}"), digits_end, words, "time")]
    if meridiem:
        letters = ctx.spell(match.group(f"apl{suffix}") + "m")
        if match.group(f"apdot{suffix}"):
            group.append(
                Replacement(
                    match.start(f"ap{suffix}"), match.end(f"ap{suffix}") - 1, letters, "time"
                )
            )
            group.extend(
                abbreviation_dot(text, match.end(f"ap{suffix}") - 1, "time", terminal=True)
            )
        else:
            group.append(piece(match, f"ap{suffix}", letters, "time"))
    return group


def times(text: str, ctx: Context) -> Iterator[Group]:
    """ "3:30 pm" -> "three thirty P-M", "15:00" -> "fifteen hundred", "9am-5pm" -> "nine A-M
    to five P-M", "9-11am" -> "nine to eleven A-M", "3.30 pm" -> "three thirty P-M"."""
    for match in _DOT_TIME.finditer(text):
        group = _time_group(text, ctx, match, "", allow_bare=False)
        if group:
            yield group
    for match in _TIME_RANGE.finditer(text):
        has_minutes = match.group("m1") and match.group("m2")
        if not (match.group("ap2") or has_minutes):
            continue
        first = _time_group(text, ctx, match, "1", allow_bare=True)
        second = _time_group(text, ctx, match, "2", allow_bare=False)
        if first is None or second is None:
            continue
        dash = match.group("dash")
        if dash.strip() == "to":
            yield [*first, *second]
        else:
            yield [*first, piece(match, "dash", "to", "time"), *second]
    for match in _TIME.finditer(text):
        group = _time_group(text, ctx, match, "", allow_bare=False)
        if group:
            yield group
