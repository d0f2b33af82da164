"""Word timing, pure parts: words mapped to the client's text, phonemes to words, spans."""
# ruff: noqa: RUF001 - phoneme strings are IPA on purpose

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.alignment import estimate_spans, phoneme_owners, spoken_words, word_spans


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, world!", [("Hello", None), ("world", None)]),
        ("It costs $4.50.", [("It", None), ("costs", None),
                             ("$4.50", "four dollars and fifty cents")]),
        ("Pi is 3.14, v2.0.1", [("Pi", None), ("is", None), ("3.14", "three point one four"),
                                ("v2.0.1", "version two point zero point one")]),
        ("**Bold** (see this) — ok...", [("Bold", None), ("see", None), ("this", None),
                                          ("ok", None)]),
        ("Visit https://x.io/a?b=1 now.", [("Visit", None),
                                           ("https://x.io/a?b=1", "x dot I-O slash a"),
                                           ("now", None)]),
        # A dropped emoji is read as nothing: no word to time.
        ("Emoji 😀 café naïve", [("Emoji", None), ("café", None), ("naïve", None)]),
        ('"Quoted," she said.', [("Quoted", None), ("she", None), ("said", None)]),
        ("日本語のテキスト", [("日本語のテキスト", None)]),
    ],
)  # fmt: skip
def test_words_point_at_the_client_characters(
    text: str, expected: list[tuple[str, str | None]]
) -> None:
    words = spoken_words(text)
    assert [(text[w.char_start : w.char_end], w.spoken) for w in words] == expected


@given(st.text(alphabet="ab 1.$*,'\n😀é-", max_size=40))
def test_word_spans_are_ordered_and_inside_the_text(text: str) -> None:
    previous_end = 0
    for word in spoken_words(text):
        assert previous_end <= word.char_start < word.char_end <= len(text)
        assert (
            text[word.char_start : word.char_end].strip() == text[word.char_start : word.char_end]
        )
        previous_end = word.char_end


def test_phonemes_of_merged_words_are_shared_out() -> None:
    # espeak reads "in the" as one word in context; alone, each is its own.
    context = "ɪnðə sˈɪɾi"
    owners = phoneme_owners(context, ["ˈɪn", "ðə", "sˈɪɾi"])
    assert owners == [0, 0, 1, 1, -1, 2, 2, 2, 2, 2]


def test_phonemes_the_context_reads_differently_join_the_word_before() -> None:
    owners = phoneme_owners("wʌzɐ sˈʌni", ["wʌz", "ˈeɪ", "sˈʌni"])
    assert owners[:4] == [0, 0, 0, 0]  # the reduced "ɐ" matched nothing: it joins "was"
    assert owners[5:] == [2, 2, 2, 2, 2]


def test_word_spans_skip_pauses() -> None:
    context = "hɛlˈoʊ, wˈɜːld."
    owners = phoneme_owners(context, ["hɛlˈoʊ,", "wˈɜːld."])
    edges = [100 * i for i in range(len(context) + 1)]
    first, second = word_spans(context, owners, edges, 2)
    assert (first.sample_start, first.sample_end) == (0, 600)  # the comma is the pause after
    assert (second.sample_start, second.sample_end) == (800, 1400)


def test_estimates_spread_by_weight() -> None:
    spans = estimate_spans([1, 3], 100, 500)
    assert [(s.sample_start, s.sample_end) for s in spans] == [(100, 200), (200, 500)]
