"""The map from what a backend reads back to the words of the request text."""

from __future__ import annotations

from gateway.backends.wordmap import SpokenText, espeak_phoneme_text, text_boundary
from gateway.core.lexicon import LexiconEntry, PronunciationLexicon
from gateway.core.reading import ReadingRules
from gateway.core.segmenter import Boundary


def spans(text: str) -> list[str]:
    return [text[w.char_start : w.char_end] for w in SpokenText(text).words]


def test_words_drop_surrounding_punctuation_and_silent_symbols() -> None:
    text = '"Hello," she said — it costs $5.50 (really)! Café 😀 naïve... e.g. 10:30'
    assert spans(text) == [
        "Hello", "she", "said", "it", "costs", "$5.50", "really", "Café", "naïve",
        "e.g", "10:30",
    ]  # fmt: skip


def test_positions_map_back_through_rewrites() -> None:
    text = "I owe **you** $5. Thanks"
    spoken = SpokenText(text)
    assert spoken.spoken == "I owe you five dollars. Thanks"
    word = {text[w.char_start : w.char_end]: i for i, w in enumerate(spoken.words)}
    assert spoken.word_at(spoken.spoken.index("you")) == word["you"]
    assert spoken.word_at(spoken.spoken.index("five")) == word["$5"]
    assert spoken.word_at(spoken.spoken.index("dollars")) == word["$5"]
    assert spoken.word_at(spoken.spoken.index("Thanks")) == word["Thanks"]
    assert spoken.words[word["$5"]].spoken == "five dollars"
    assert spoken.words[word["you"]].spoken is None
    timing = spoken.timing(word["$5"], 10, 20)
    assert text[timing.char_start : timing.char_end] == "$5"
    assert (timing.sample_start, timing.sample_end, timing.spoken) == (10, 20, "five dollars")


def test_positions_between_words_belong_to_the_word_before() -> None:
    text = "smile, now"
    spoken = SpokenText(text)
    assert spoken.word_at(text.index(",")) == 0
    assert spoken.word_at(0) == 0
    assert spoken.word_at(len(text)) == 1
    assert SpokenText("— …").word_at(0) is None  # no words at all


def test_espeak_phonemes_replace_the_word_and_map_back() -> None:
    lexicon = PronunciationLexicon([LexiconEntry(word="Nguyen", say="win", espeak="w'In")])
    spoken = SpokenText("Mr Nguyen, hi.", rules=ReadingRules(lexicon=lexicon))
    text, origin = espeak_phoneme_text(spoken)
    assert text == spoken.spoken.replace("win", "[[w'In]]")
    assert len(origin) == len(text) + 1
    assert spoken.word_at(origin[text.index("[[") + 3]) == 1
    assert spoken.word_at(origin[text.index("hi")]) == 2


def test_boundary_of_a_text() -> None:
    assert text_boundary("Done.") is Boundary.SENTENCE
    assert text_boundary('He said "stop!" ') is Boundary.SENTENCE
    assert text_boundary("first, ") is Boundary.CLAUSE
    assert text_boundary("終わり。") is Boundary.SENTENCE
    assert text_boundary("and then") is Boundary.WORD
