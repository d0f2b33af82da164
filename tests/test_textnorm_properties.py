"""Properties over generated text: normalization never fails, and its offsets always hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.textnorm import Settings, normalize
from tests.textnorm_cases import check_offsets

_CHARS = "aZ $€£%/:.-,0123456789 \n*_#`|()[]'\"°@&+~<>!?é😀👍🏽️½×–"
_TOKENS = [
    "$5", "$1,234.56", "12/05/2024", "2024-12-05", "3/4", "1st", "22nd", "3:30", "pm", "p.m.",
    "9am-5pm", "555-123-4567", "(555)", "version", "2.0.1", "v2", "1999", "people", "in",
    "1990s", "'80s", "2019-2021", "10-15%", "5", "km", "72°F", "5'11\"", "e.g.", "etc.",
    "Dr.", "St.", "Smith", "NASA", "FBI", "APIs", "https://example.com/a?b", "a@b.com",
    "**bold**", "`code`", "```", "```py\nx = 1\n```", "# ", "- ", "| a | b |", "|---|",
    "👍", "🚀", "Dec", "5,", "December", "the", "of", "II", "Henry", "&", "=", "½", "x86",
    "[a](b.com)", "![c](d.png)", "<b>", "-", "–", ".", ",", "\n", "  ",
]  # fmt: skip
_SETTINGS = st.builds(
    Settings,
    date_order=st.sampled_from(["mdy", "dmy", None]),
    emoji=st.sampled_from(["drop", "name"]),
    code_blocks=st.sampled_from(["skip", "announce"]),
    letter_style=st.sampled_from(["hyphen", "space"]),
    speller=st.sampled_from(["num2words", "inflect"]),
)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_CHARS, max_size=60), _SETTINGS)
def test_any_text_keeps_its_offsets(text: str, options: Settings) -> None:
    check_offsets(normalize(text, "en", options))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_TOKENS), max_size=12),
    st.lists(st.sampled_from(["", " ", "  ", "\n"]), min_size=12, max_size=12),
    _SETTINGS,
)
def test_token_soup_keeps_its_offsets(
    tokens: list[str], gaps: list[str], options: Settings
) -> None:
    text = "".join(token + gap for token, gap in zip(tokens, gaps, strict=False))
    check_offsets(normalize(text, "en", options))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_any_unicode_keeps_its_offsets(text: str) -> None:
    check_offsets(normalize(text, "en-gb", Settings(emoji="name")))
