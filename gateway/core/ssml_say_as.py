"""How SSML ``say-as`` reads its content (English), through the normalizer's pieces (no I/O)."""

from __future__ import annotations

import html
import re
from typing import Final

from gateway.core.textnorm import Settings, get_normalizer
from gateway.core.textnorm.numbers import Num2Words, digits, read_decimal

__all__ = ["say_as"]

_NUMBERS: Final = Num2Words()
_LETTERS_OR_DIGITS: Final = re.compile(r"[^\W\d_]+|\d+")


def say_as(interpret_as: str, content: str, date_format: str = "") -> str:
    """The words for ``content`` read as ``interpret_as`` (``characters``, ``cardinal``,
    ``ordinal``, ``date`` in ``date_format`` ``mdy``/``dmy``/``ymd``, ``telephone``); what
    cannot be read so is read as the normalizer reads it."""
    text = " ".join(html.unescape(content).split())
    number = text.replace(",", "").replace(" ", "")
    if interpret_as == "characters":
        return " ".join(
            "-".join(run.upper()) if not run.isdigit() else digits(run)
            for run in _LETTERS_OR_DIGITS.findall(text)
        )
    if interpret_as == "cardinal" and re.fullmatch(r"-?[0-9]+(?:\.[0-9]+)?", number):
        return read_decimal(_NUMBERS, number)
    if interpret_as == "ordinal" and re.fullmatch(r"[0-9]+(?:st|nd|rd|th)?", number):
        return _NUMBERS.ordinal(int(re.sub(r"\D", "", number)))
    if interpret_as == "telephone" and re.search(r"[0-9]", text):
        groups = re.findall(r"\+|[0-9]+", text)
        return ", ".join("plus" if group == "+" else digits(group) for group in groups)
    if interpret_as == "date":
        spoken = _date(text, date_format or "mdy")
        if spoken:
            return spoken
    return get_normalizer("en-us").normalize(text).text


def _date(text: str, date_format: str) -> str | None:
    parts = re.findall(r"[0-9]+", text)
    if len(parts) not in (2, 3):
        return None
    fields = dict(zip(date_format if len(parts) == 3 else date_format.replace("y", ""), parts,
                      strict=False))  # fmt: skip
    try:
        month, day = int(fields["m"]), int(fields["d"])
    except (KeyError, ValueError):
        return None
    year = fields.get("y", "")
    iso = f"{int(year):04d}-{month:02d}-{day:02d}" if year else f"{month}/{day}"
    normalizer = get_normalizer(
        "en-us", Settings(date_order="dmy" if date_format == "dmy" else "mdy")
    )
    if not year:
        spoken = normalizer.normalize(f"on {iso}").text.removeprefix("on ")
    else:
        spoken = normalizer.normalize(iso).text
    return None if re.search(r"[0-9]", spoken) else spoken
