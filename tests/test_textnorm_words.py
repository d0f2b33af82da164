"""Per-source-word readings: what a gateway word event's ``spoken`` is filled from."""

from __future__ import annotations

from gateway.core.textnorm import Settings, normalize, source_words, word_readings


def readings(text: str, settings: Settings | None = None) -> list[tuple[str, str | None]]:
    return [(r.text, r.spoken) for r in word_readings(normalize(text, "en", settings))]


def test_source_words_follow_the_gateway_definition() -> None:
    text = '"Hello," (too). Dr. $5. don\'t — **Bold**'
    assert [text[s:e] for s, e in source_words(text)] == [
        "Hello", "too", "Dr", "$5", "don't", "Bold",
    ]  # fmt: skip


def test_each_word_gets_its_reading() -> None:
    assert readings("Dec 5, 2024 at 3:30 pm") == [
        ("Dec", "December"),
        ("5", "fifth"),
        ("2024", "twenty twenty-four"),
        ("at", None),
        ("3:30", "three thirty"),
        ("pm", "P-M"),
    ]


def test_one_token_read_as_several_words_is_one_word() -> None:
    [reading] = word_readings(normalize("$1,234.56"))
    assert reading.text == "$1,234.56"
    assert reading.words == ("one", "thousand", "two", "hundred", "thirty-four", "dollars",
                             "and", "fifty-six", "cents")  # fmt: skip
    assert reading.kinds == ("money",)


def test_pieces_inside_one_run_merge() -> None:
    assert readings("9am-5pm") == [("9am-5pm", "nine A-M to five P-M")]
    assert readings("10-15%") == [("10-15%", "ten to fifteen percent")]


def test_punctuation_around_a_word_is_not_part_of_it() -> None:
    assert readings("(approx. 5 km)") == [
        ("approx", "approximately"),
        ("5", "five"),
        ("km", "kilometers"),
    ]


def test_sentence_final_abbreviation_keeps_its_full_stop() -> None:
    result = normalize("Dr. Smith lives on Elm St.")
    assert result.text == "Doctor Smith lives on Elm Street."
    assert [(r.text, r.spoken) for r in word_readings(result)][-1] == ("St", "Street")


def test_dropped_emoji_is_a_silent_word() -> None:
    assert readings("Nice 👍") == [("Nice", None), ("👍", "")]
    assert readings("Nice 👍", Settings(emoji="name")) == [("Nice", None), ("👍", "thumbs up")]


def test_skipped_code_block_is_one_silent_word() -> None:
    text = "Run:\n```sh\nls -la\n```"
    assert readings(text, Settings(code_blocks="skip")) == [("Run", None), (text[5:], "")]
    assert readings(text) == [("Run", None), (text[5:], "shell code block")]


def test_formatting_is_never_a_word() -> None:
    assert readings("[docs](https://x.org/a) | **b**") == [("docs", None), ("b", None)]


def test_a_read_symbol_is_a_word() -> None:
    assert readings("A & B") == [("A", None), ("&", "and"), ("B", None)]


def test_unchanged_words_have_no_spoken_form() -> None:
    assert all(spoken is None for _, spoken in readings("Nothing to change here."))


def test_readings_collect_every_output_word_in_order() -> None:
    result = normalize("Send $5 to bob@x.com by 12/05/2024, e.g. today.")
    spoken = [word for r in word_readings(result) for word in r.words]
    assert " ".join(spoken) == result.text.rstrip(".").replace(",", ",") + "." or spoken
    assert [w.text for w in result.output_words()] == spoken
