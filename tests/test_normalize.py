"""Speakable text: Markdown and money rewritten, with a map back to the client's characters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.normalize import speakable


def spoken(text: str) -> str:
    return "".join(piece.spoken for piece in speakable(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**Bold** move", " Bold  move"),
        ("# Title\n- item", " Title\n item"),
        ("Use `pip` _now_", "Use  pip   now "),
        ("2*3 = 6 and snake_case", "2*3 = 6 and snake_case"),
        ("It costs $4.50.", "It costs 4 dollars 50 cents."),
        ("£1.01 or €1,200", "1 pound 1 penny or 1,200 euros"),
        ("$1 and $3.00", "1 dollar and 3 dollars"),
        ("Plain text stays.", "Plain text stays."),
    ],
)
def test_rewrites(text: str, expected: str) -> None:
    assert spoken(text) == expected


@given(st.text(alphabet="ab $£€1.,*_#-`\n ", max_size=60))
def test_pieces_cover_the_text_in_order(text: str) -> None:
    pieces = speakable(text)
    position = 0
    for piece in pieces:
        assert piece.start == position < piece.end
        position = piece.end
    assert position == len(text)
    # Unchanged pieces are the client's characters exactly.
    for piece in pieces:
        if piece.spoken == text[piece.start : piece.end]:
            continue
        assert any(mark in text[piece.start : piece.end] for mark in "$£€*_#-`.")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3.14", "3 point 1 4"), ("v2.0.1", "v2 point 0 point 1"), ("1.5x", "1 point 5x"),
     ("end.", "end."), ("Go 2. Then", "Go 2. Then")],
)  # fmt: skip
def test_decimals_are_read_digit_by_digit(text: str, expected: str) -> None:
    assert spoken(text) == expected
