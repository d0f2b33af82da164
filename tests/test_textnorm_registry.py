"""Languages, settings, purity, and the lexicon hook."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.core.lexicon import LexiconEntry, PronunciationLexicon
from gateway.core.textnorm import (
    Phonemes,
    Replacement,
    Rule,
    RuleNormalizer,
    Settings,
    get_normalizer,
    normalize,
    register_language,
    registered_languages,
    unregister_language,
    word_readings,
)


@pytest.mark.parametrize("tag", ["en", "en-US", "en_gb", "EN-au", "en-US-x-custom", " en "])
def test_english_tags(tag: str) -> None:
    assert normalize("$5", tag).text == "five dollars"


@pytest.mark.parametrize("tag", ["fr", "de-DE", "ja", "", "zz"])
def test_other_languages_are_identity(tag: str) -> None:
    result = normalize("Il coûte $5, le 12/05/2024.", tag)
    assert result.text == result.source
    assert not result.changed


def test_dialect_defaults() -> None:
    assert normalize("12/05/2024", "en-gb").text == "the twelfth of May twenty twenty-four"
    assert normalize("12/05/2024", "en-us").text == "December fifth twenty twenty-four"
    assert normalize("101 dogs", "en-gb").text == "one hundred and one dogs"
    assert normalize("101 dogs", "en").text == "one hundred one dogs"
    override = Settings(date_order="mdy", and_in_numbers=False)
    assert normalize("12/05/2024 101", "en-gb", override).text == (
        "December fifth twenty twenty-four one hundred one"
    )


def test_normalizers_are_cached_per_language_and_settings() -> None:
    assert get_normalizer("en-us") is get_normalizer("EN_us")
    assert get_normalizer("en") is not get_normalizer("en", Settings(emoji="name"))
    assert get_normalizer("en", Settings(emoji="name")) is get_normalizer(
        "en", Settings(emoji="name")
    )
    assert get_normalizer("en-gb").language == "en-gb"
    assert get_normalizer("en-gb").settings == Settings()


def test_settings_are_hashable_and_frozen() -> None:
    settings = Settings(acronyms=frozenset({"GNU"}))
    assert hash(settings) == hash(Settings(acronyms=frozenset({"GNU"})))
    with pytest.raises(AttributeError):
        settings.emoji = "name"  # type: ignore[misc]


@pytest.mark.parametrize(
    "options",
    [
        {"date_order": "ymd"},
        {"emoji": "keep"},
        {"code_blocks": "read"},
        {"letter_style": "dots"},
        {"speller": "mine"},
        {"acronyms": "NASA"},
        {"and_in_numbers": "yes"},
    ],
)
def test_invalid_settings_are_rejected(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        Settings(**options)  # type: ignore[arg-type]


def test_word_lists_are_frozen() -> None:
    settings = Settings(acronyms={"GNU"}, initialisms=["NASA"])  # type: ignore[arg-type]
    assert settings.acronyms == frozenset({"GNU"})
    assert settings.initialisms == frozenset({"NASA"})
    assert normalize("GNU NASA", settings=settings).text == "GNU N-A-S-A"


def test_normalization_is_pure_per_segment() -> None:
    first = normalize("Dr. Smith paid $5 on 12/05/2024.")
    normalize("```python\nunclosed fence")
    assert normalize("Dr. Smith paid $5 on 12/05/2024.") == first


def _shout(text: str, context: None) -> Iterator[list[Replacement]]:
    del context
    for index, char in enumerate(text):
        if char == "!":
            yield [Replacement(index, index + 1, " bang", "shout")]


def test_register_a_language() -> None:
    rules = (Rule("shout", _shout),)
    register_language("xx", lambda tag, settings: RuleNormalizer(tag, settings, rules, None))
    try:
        assert "xx" in registered_languages()
        assert normalize("hi!", "xx-YY").text == "hi bang"
        assert normalize("hi!", "en").text == "hi!"
    finally:
        unregister_language("xx")
    assert normalize("hi!", "xx").text == "hi!"


def test_lexicon_wins_over_rules() -> None:
    lexicon = PronunciationLexicon(
        [
            LexiconEntry(word="NASA", say="Nasa"),
            LexiconEntry(word="Kokoro", say="koh-koh-roh", ipa="kˈOkəɹO"),
            LexiconEntry(pattern=r"\$5\b", say="a fiver"),
            LexiconEntry(pattern=r"\bv(\d)\b", say=r"vee \1"),
        ]
    )
    result = normalize("NASA paid Kokoro $5 for v2 in 1999.", lexicon=lexicon)
    assert result.text == "Nasa paid koh-koh-roh a fiver for vee 2 in nineteen ninety-nine."
    kokoro = next(s for s in result.spans if s.kind == "lexicon" and s.phonemes)
    assert result.source[kokoro.src_start : kokoro.src_end] == "Kokoro"
    assert kokoro.phonemes == Phonemes(ipa="kˈOkəɹO")
    spoken = {r.text: r.spoken for r in word_readings(result)}
    assert spoken["$5"] == "a fiver"
    assert spoken["NASA"] == "Nasa"


def test_lexicon_applies_to_identity_languages() -> None:
    lexicon = PronunciationLexicon([LexiconEntry(word="GPU", say="G P U")])
    assert normalize("Le GPU", "fr", lexicon=lexicon).text == "Le G P U"


def test_lexicon_entry_read_as_written_still_protects() -> None:
    lexicon = PronunciationLexicon([LexiconEntry(word="FBI", say="FBI")])
    assert normalize("the FBI", lexicon=lexicon).text == "the FBI"


def test_overlapping_lexicon_entries_first_wins() -> None:
    lexicon = PronunciationLexicon(
        [
            LexiconEntry(pattern="New York", say="Noo York"),
            LexiconEntry(pattern="York City", say="X"),
        ]
    )
    assert normalize("New York City", lexicon=lexicon).text == "Noo York City"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (Settings(), "code block"),
        (Settings(code_blocks="skip"), ""),
        (Settings(emoji="name"), "code block"),
    ],
)
def test_code_block_setting(options: Settings, expected: str) -> None:
    assert normalize("```\nx\n```", "en", options).text == expected


def test_user_lists_move_words_between_acronyms_and_initialisms() -> None:
    both = Settings(acronyms=frozenset({"SQL"}), initialisms=frozenset({"NATO"}))
    assert normalize("SQL and NATO", "en", both).text == "SQL and N-A-T-O"
