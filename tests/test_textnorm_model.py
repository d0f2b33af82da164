"""The data types: spans, offset mapping, output words, padding, assembly."""

from __future__ import annotations

import pytest

from gateway.core.textnorm import Normalized, Replacement, normalize
from gateway.core.textnorm.model import assemble
from tests.textnorm_cases import check_offsets


def test_spans_cover_source_and_output_in_order() -> None:
    result = normalize("It costs $5 now.")
    assert result.text == "It costs five dollars now."
    assert [(s.src_start, s.src_end, s.kind) for s in result.spans] == [
        (0, 9, None),
        (9, 11, "money"),
        (11, 16, None),
    ]
    check_offsets(result)


def test_output_words_map_to_source_characters() -> None:
    result = normalize("It costs $5 now.")
    mapped = [(w.text, result.source[w.src_start : w.src_end]) for w in result.output_words()]
    assert mapped == [
        ("It", "It"),
        ("costs", "costs"),
        ("five", "$5"),
        ("dollars", "$5"),
        ("now.", "now."),
    ]


def test_source_offset_inside_verbatim_and_replaced_text() -> None:
    result = normalize("a $5 b")
    assert result.text == "a five dollars b"
    assert result.source_offset(0) == 0
    assert result.source_offset(2) == 2  # "f" of "five" -> "$"
    assert result.source_offset(6) == 2  # "d" of "dollars" -> "$" (the whole replacement)
    assert result.source_offset(14, end=True) == 4  # end of "dollars" -> end of "$5"
    assert result.source_offset(15) == 5
    assert result.source_offset(len(result.text)) == len(result.source)
    assert result.source_offset(0, end=True) == 0
    assert result.source_range(2, 14) == (2, 4)
    assert result.source_range(15, 16) == (5, 6)
    assert result.source_range(3, 3) == (2, 2)


def test_deleted_characters_map_to_what_follows() -> None:
    result = normalize("**Bold** move")
    assert result.text == "Bold move"
    words = [(w.text, w.src_start, w.src_end) for w in result.output_words()]
    assert words == [("Bold", 2, 6), ("move", 9, 13)]


def test_padding_keeps_readings_apart() -> None:
    result = normalize("x86")
    assert result.text == "x eighty-six"
    assert result.replacements() == [Replacement(1, 3, "eighty-six", "number")]
    check_offsets(result)


def test_padding_after_a_replacement_before_verbatim_text() -> None:
    result = normalize("3D")
    assert result.text == "three D"


def test_a_dropped_emoji_between_words_becomes_a_space() -> None:
    assert normalize("Launch🚀now").text == "Launch now"


def test_unchanged_text_has_one_verbatim_span() -> None:
    result = normalize("Plain words here.")
    assert not result.changed
    assert len(result.spans) == 1
    assert result.spans[0].verbatim
    assert result.replacements() == []


def test_empty_text() -> None:
    result = normalize("")
    assert result == Normalized("", "", ())
    assert result.output_words() == []
    assert result.source_offset(0) == 0


def test_replacements_report_source_and_reading() -> None:
    result = normalize("Call 555-1234 at 3:30 pm")
    readings = {result.source[r.start : r.end]: (r.spoken, r.kind) for r in result.replacements()}
    assert readings["555"] == ("five five five", "phone")
    assert readings["1234"] == ("one two three four", "phone")
    assert readings["3:30"] == ("three thirty", "time")
    assert readings["pm"] == ("P-M", "time")


def test_assemble_rejects_overlaps() -> None:
    with pytest.raises(ValueError, match="overlapping"):
        assemble("abcdef", [Replacement(0, 3, "x"), Replacement(2, 4, "y")])


def test_empty_replacements_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Replacement(3, 3, "x")


def test_offsets_are_code_points() -> None:
    result = normalize("😀 costs $5")
    five = next(w for w in result.output_words() if w.text == "five")
    assert result.source[five.src_start : five.src_end] == "$5"
    assert five.src_start == 8


def test_multiline_text_keeps_line_breaks() -> None:
    result = normalize("# Title\n- item 1\n- item 2")
    assert result.text == "Title\nitem one\nitem two"
    check_offsets(result)
