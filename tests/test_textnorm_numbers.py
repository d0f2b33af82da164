"""The number spellers: both libraries give the same readings; helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.textnorm import Settings, normalize
from gateway.core.textnorm.numbers import (
    InflectWords,
    Num2Words,
    NumberWords,
    digits,
    plural_of_number_word,
    read_decimal,
)

SPELLERS: list[NumberWords] = [Num2Words(), InflectWords()]
BRITISH: list[NumberWords] = [Num2Words(and_word=True), InflectWords(and_word=True)]


@given(st.integers(min_value=0, max_value=10**12))
def test_spellers_agree_on_cardinals_and_ordinals(value: int) -> None:
    for group in (SPELLERS, BRITISH):
        assert group[0].cardinal(value) == group[1].cardinal(value)
        assert group[0].ordinal(value) == group[1].ordinal(value)


@given(st.integers(min_value=0, max_value=9999))
def test_spellers_agree_on_years(value: int) -> None:
    assert SPELLERS[0].year(value) == SPELLERS[1].year(value)
    assert BRITISH[0].year(value) == BRITISH[1].year(value)


@pytest.mark.parametrize("speller", SPELLERS, ids=["num2words", "inflect"])
@pytest.mark.parametrize(
    ("method", "value", "expected"),
    [
        ("cardinal", 0, "zero"),
        ("cardinal", 101, "one hundred one"),
        ("cardinal", 1999, "one thousand nine hundred ninety-nine"),
        ("cardinal", -5, "minus five"),
        ("cardinal", 1_000_000, "one million"),
        ("ordinal", 1, "first"),
        ("ordinal", 22, "twenty-second"),
        ("ordinal", 100, "one hundredth"),
        ("year", 1999, "nineteen ninety-nine"),
        ("year", 2000, "two thousand"),
        ("year", 2005, "two thousand five"),
        ("year", 2010, "twenty ten"),
        ("year", 1905, "nineteen oh-five"),
        ("year", 1800, "eighteen hundred"),
        ("year", 800, "eight hundred"),
    ],
)
def test_readings(speller: NumberWords, method: str, value: int, expected: str) -> None:
    assert getattr(speller, method)(value) == expected


def test_british_and() -> None:
    assert Num2Words(and_word=True).cardinal(101) == "one hundred and one"
    assert InflectWords(and_word=True).year(2005) == "two thousand and five"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1,234", "one thousand two hundred thirty-four"), ("3.14", "three point one four"),
     (".5", "point five"), ("007", "zero zero seven"), ("-2.5", "minus two point five"),
     ("12345678901234567", "one two three four five six seven eight nine zero one two three "
                           "four five six seven")],
)  # fmt: skip
def test_read_decimal(text: str, expected: str) -> None:
    assert read_decimal(Num2Words(), text) == expected


def test_digits_and_plurals() -> None:
    assert digits("4567") == "four five six seven"
    assert digits("0-1") == "zero one"
    assert plural_of_number_word("nineteen ninety") == "nineteen nineties"
    assert plural_of_number_word("half") == "halves"
    assert plural_of_number_word("sixth") == "sixths"


@pytest.mark.parametrize(
    "text",
    ["$1,234.56 on 12/05/2024", "in 1905 and 2005", "the 22nd", "3/4", "1990s", "101 km"],
)
def test_both_spellers_read_texts_alike(text: str) -> None:
    assert normalize(text).text == normalize(text, settings=Settings(speller="inflect")).text
