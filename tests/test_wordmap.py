"""The map from what a backend reads back to the words of the request text."""

from __future__ import annotations

from gateway.backends.wordmap import SpokenText, text_boundary, text_words
from gateway.core.segmenter import Boundary


def spans(text: str) -> list[str]:
    return [text[w.start : w.end] for w in text_words(text)]


def test_words_drop_surrounding_punctuation_only() -> None:
    text = '"Hello," she said — it costs $5.50 (really)! Café 😀 naïve... e.g. 10:30'
    assert spans(text) == [
        "Hello", "she", "said", "it", "costs", "$5.50", "really", "Café", "😀", "naïve",
        "e.g", "10:30",
    ]  # fmt: skip


def test_positions_map_back_through_rewrites() -> None:
    text = "I owe **you** $5. Thanks"
    spoken = SpokenText(text)
    assert spoken.spoken == "I owe  you  5 dollars. Thanks"
    word = {text[w.start : w.end]: i for i, w in enumerate(spoken.words)}
    assert spoken.word_at(spoken.spoken.index("you")) == word["you"]
    assert spoken.word_at(spoken.spoken.index("5")) == word["$5"]
    assert spoken.word_at(spoken.spoken.index("dollars")) == word["$5"]
    assert spoken.word_at(spoken.spoken.index("Thanks")) == word["Thanks"]
    assert spoken.spoken_form(word["$5"]) == "5 dollars"
    assert spoken.spoken_form(word["you"]) is None
    timing = spoken.timing(word["$5"], 10, 20)
    assert text[timing.char_start : timing.char_end] == "$5"
    assert (timing.sample_start, timing.sample_end, timing.spoken) == (10, 20, "5 dollars")


def test_positions_between_words_belong_to_the_word_before() -> None:
    text = "smile 😀 now"
    spoken = SpokenText(text)
    assert spoken.word_at(text.index("😀") + 1) == 1  # a later word of the emoji's name
    assert spoken.word_at(0) == 0
    assert spoken.word_at(len(text)) == 2
    assert SpokenText("— …").word_at(0) is None  # no words at all


def test_boundary_of_a_text() -> None:
    assert text_boundary("Done.") is Boundary.SENTENCE
    assert text_boundary('He said "stop!" ') is Boundary.SENTENCE
    assert text_boundary("first, ") is Boundary.CLAUSE
    assert text_boundary("終わり。") is Boundary.SENTENCE
    assert text_boundary("and then") is Boundary.WORD
