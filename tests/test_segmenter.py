"""Tests of the incremental segmenter: each rule by example, early release, and properties."""

# ruff: noqa: RUF001
# (fullwidth CJK punctuation and typographic quotes and dashes are the point of these tests)

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.segmenter import Boundary, Segment, Segmenter, SegmenterConfig

SENTENCE = Boundary.SENTENCE
CLAUSE = Boundary.CLAUSE
LINE = Boundary.LINE
WORD = Boundary.WORD
HARD = Boundary.HARD

# No clause splitting of the first segment, so that the other rules are seen alone.
PLAIN = SegmenterConfig(short_first_segment=False)


def run(
    pieces: Iterable[str], config: SegmenterConfig | None = None, *, flush_after: bool = False
) -> list[Segment]:
    """Push the pieces (flushing after each one if asked), then finish."""
    segmenter = Segmenter(config)
    segments: list[Segment] = []
    for piece in pieces:
        segments += segmenter.push(piece)
        if flush_after:
            segments += segmenter.flush()
    return segments + segmenter.finish()


def texts(text: str, config: SegmenterConfig | None = PLAIN) -> list[tuple[str, Boundary]]:
    """(text, boundary) of each segment of ``text`` pushed whole, then finished."""
    return [(segment.text, segment.boundary) for segment in run([text], config)]


def released(segments: Sequence[Segment]) -> list[str]:
    return [segment.text for segment in segments]


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_chars": 0}, "max_chars"),
        ({"max_chars": -5}, "max_chars"),
        ({"first_segment_min_chars": 0}, "first_segment_min_chars"),
        ({"first_segment_max_chars": 0}, "first_segment_max_chars"),
        ({"first_segment_min_chars": 100}, "first_segment_min_chars"),
        ({"first_segment_max_chars": 301}, "first_segment_max_chars"),
        ({"max_chars": 50}, "first_segment_max_chars"),
        ({"short_first_segment": 1}, "short_first_segment"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        SegmenterConfig(**kwargs)  # type: ignore[arg-type]


def test_config_defaults() -> None:
    config = SegmenterConfig()
    assert (config.max_chars, config.short_first_segment) == (300, True)
    assert (config.first_segment_min_chars, config.first_segment_max_chars) == (10, 100)


# -- sentences and early release --------------------------------------------------------------


def test_sentences_release_on_the_first_character_after_the_punctuation() -> None:
    segmenter = Segmenter()
    assert segmenter.push("Hello world.") == []
    assert segmenter.push(" ") == [Segment(0, 12, "Hello world.", SENTENCE, True)]
    assert segmenter.push(" How are") == []
    assert segmenter.pending_text == "  How are"
    assert segmenter.push(" you?!") == []
    assert segmenter.push("\tFine") == [Segment(12, 27, "  How are you?!", SENTENCE, False)]
    assert segmenter.pending_start == 27
    assert segmenter.received == 32
    assert segmenter.finish() == [Segment(27, 32, "\tFine", WORD, False)]


def test_a_sentence_ends_only_when_whitespace_follows() -> None:
    segmenter = Segmenter(PLAIN)
    assert segmenter.push("It is 3.") == []
    assert segmenter.push("14 now. O") == [Segment(0, 15, "It is 3.14 now.", SENTENCE, True)]


def test_closing_quotes_are_awaited_and_kept_with_the_sentence() -> None:
    segmenter = Segmenter(PLAIN)
    assert segmenter.push('She said "Go!') == []
    assert segmenter.push('"') == []
    assert segmenter.push(")") == []
    assert released(segmenter.push(" Then")) == ['She said "Go!")']


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Hello world. How are you? I'm fine!  Thanks.",
            ["Hello world.", " How are you?", " I'm fine!", "  Thanks."],
        ),
        ("Really?! Yes‼ No⁉ Ok.", ["Really?!", " Yes‼", " No⁉", " Ok."]),
        ('She said "Go!" Then left.', ['She said "Go!"', " Then left."]),
        ("(This is an aside.) Next.", ["(This is an aside.)", " Next."]),
        ("«Bonjour.» Salut.", ["«Bonjour.»", " Salut."]),
        ("He said “fine.” Then ‘ok.’ Done.", ["He said “fine.”", " Then ‘ok.’", " Done."]),
        ("Great job 👍. Next one 👩‍💻! End", ["Great job 👍.", " Next one 👩‍💻!", " End"]),
    ],
)
def test_terminal_punctuation_and_closers(text: str, expected: list[str]) -> None:
    assert [segment for segment, _ in texts(text)] == expected


# -- abbreviations, initials, ellipses ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Mr. and Mrs. Smith met Dr. Jones. They talked.",
            ["Mr. and Mrs. Smith met Dr. Jones.", " They talked."],
        ),
        (
            "Prof. X and St. Paul vs. Lt. Col. Young. Done.",
            ["Prof. X and St. Paul vs. Lt. Col. Young.", " Done."],
        ),
        ("Ask J. Do it.", ["Ask J. Do it."]),
        (
            "Use tools, e.g. hammers, i.e. heavy ones. Fine.",
            ["Use tools, e.g. hammers, i.e. heavy ones.", " Fine."],
        ),
        (
            "See Fig. 3, Vol. 2 and approx. ten. OK.",
            ["See Fig. 3, Vol. 2 and approx. ten.", " OK."],
        ),
        ("DR. WHO. Yes.", ["DR. WHO.", " Yes."]),
        ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", " Yes."]),
        (
            "Options: a. first item b. second item. Done.",
            ["Options: a. first item b. second item.", " Done."],
        ),
        (
            "We sell apples, pears, etc. and more. Yes.",
            ["We sell apples, pears, etc. and more.", " Yes."],
        ),
        ("We sell apples, pears, etc. The end.", ["We sell apples, pears, etc.", " The end."]),
        ("Call No. 5 now. Yes.", ["Call No. 5 now.", " Yes."]),
        ("I said no. Then left.", ["I said no.", " Then left."]),
        ("Acme Inc. makes things.", ["Acme Inc. makes things."]),
        ("Acme Inc. Makes things.", ["Acme Inc.", " Makes things."]),
        ("He lives in the U.S.A. and works.", ["He lives in the U.S.A. and works."]),
        ("He lives in the U.S.A. He works.", ["He lives in the U.S.A.", " He works."]),
        (
            "At 5 p.m. we ate. At 6 a.m. We slept.",
            ["At 5 p.m. we ate.", " At 6 a.m.", " We slept."],
        ),
        ("In the U.K. 5 people came.", ["In the U.K. 5 people came."]),
        ('He said etc. "Next" one.', ["He said etc.", ' "Next" one.']),
        ("Apples etc.\nPears", ["Apples etc.", "\nPears"]),
        ("Wait... what is that? Ok.", ["Wait... what is that?", " Ok."]),
        ("Wait... What is that?", ["Wait...", " What is that?"]),
        ("So… yes. Well… No.", ["So… yes.", " Well…", " No."]),
        ("Hmm...\nnext", ["Hmm...", "\nnext"]),
        ("Wait...  5 more.", ["Wait...", "  5 more."]),
    ],
)
def test_abbreviations_initials_and_ellipses(text: str, expected: list[str]) -> None:
    assert [segment for segment, _ in texts(text)] == expected


def test_a_maybe_terminal_abbreviation_waits_for_the_next_visible_character() -> None:
    segmenter = Segmenter(PLAIN)
    assert segmenter.push("Apples etc.") == []
    assert segmenter.push("  ") == []
    assert segmenter.push("a") == []
    assert segmenter.push("nd more. ") == [Segment(0, 22, "Apples etc.  and more.", SENTENCE, True)]
    assert segmenter.push("Pears etc. ") == []
    assert segmenter.push('"') == []
    assert released(segmenter.push("P")) == [" Pears etc."]


def test_an_ellipsis_waits_for_the_next_visible_character() -> None:
    segmenter = Segmenter(PLAIN)
    assert segmenter.push("Wait...") == []
    assert segmenter.push(" ") == []
    assert released(segmenter.push("W")) == ["Wait..."]
    assert segmenter.push("ell… ") == []
    assert segmenter.push("no") == []


def test_a_very_long_gap_after_an_abbreviation_counts_as_the_end() -> None:
    segmenter = Segmenter(PLAIN)
    assert released(segmenter.push("Apples etc." + " " * 70)) == ["Apples etc."]
    assert segmenter.push(" " * 6) == []  # not released: blank and within the limit
    assert texts("Apples etc." + " " * 63 + "and more.") == [
        ("Apples etc." + " " * 63 + "and more.", SENTENCE)
    ]


# -- numbers, URLs, emails --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pi is 3.14 and e is 2.718. Next.", ["Pi is 3.14 and e is 2.718.", " Next."]),
        ("Pi is 3.14. Next.", ["Pi is 3.14.", " Next."]),
        ("Version v2.0.1 shipped today. Yes.", ["Version v2.0.1 shipped today.", " Yes."]),
        ("It costs 1,000.5 dollars. Ok.", ["It costs 1,000.5 dollars.", " Ok."]),
        ("Visit example.com today. Ok.", ["Visit example.com today.", " Ok."]),
        ("Visit example.com. Ok.", ["Visit example.com.", " Ok."]),
        ("Open https://x.org/a.b?c=1 now. Bye.", ["Open https://x.org/a.b?c=1 now.", " Bye."]),
        ("The file is https://x.org/a. Next.", ["The file is https://x.org/a.", " Next."]),
        ("Mail jane.doe@mail.com please. Thanks.", ["Mail jane.doe@mail.com please.", " Thanks."]),
        ("Mail jane.doe@mail.com. Thanks.", ["Mail jane.doe@mail.com.", " Thanks."]),
        ("At 10:30, ok? Yes.", ["At 10:30, ok?", " Yes."]),
        ("I counted to 3. Then I stopped.", ["I counted to 3.", " Then I stopped."]),
    ],
)
def test_numbers_urls_and_emails_are_never_split(text: str, expected: list[str]) -> None:
    # With the default config too: "1,000.5" and "10:30," must not end a short first clause.
    assert [segment for segment, _ in texts(text)] == expected
    assert [segment for segment, _ in texts(text, SegmenterConfig())] == expected


def test_urls_and_emails_survive_any_fragmentation() -> None:
    text = "Go to https://x.org/a.b?c=1&d=2.5 or mail jane.doe@mail.com. Thanks."
    expected = ["Go to https://x.org/a.b?c=1&d=2.5 or mail jane.doe@mail.com.", " Thanks."]
    assert released(run(text)) == expected
    assert released(run(text)) == released(run(list(text)))


# -- lines and lists ----------------------------------------------------------------------------


def test_a_line_break_ends_a_segment_with_content() -> None:
    assert texts("Title\nBody text.\n\n\nMore") == [
        ("Title", LINE),
        ("\nBody text.", SENTENCE),
        ("\n\n\nMore", WORD),
    ]
    assert texts("One\r\nTwo\u2028Three") == [
        ("One", LINE),
        ("\r\nTwo", LINE),
        ("\u2028Three", WORD),
    ]


def test_a_line_break_releases_at_once() -> None:
    segmenter = Segmenter()
    assert segmenter.push("Title") == []
    assert segmenter.push("\n") == [Segment(0, 5, "Title", LINE, True)]
    assert segmenter.push("\n\n") == []


def test_list_items_are_one_segment_each() -> None:
    text = "Steps:\n1. Open the box.\n2. Take it out\n- Enjoy\n* Repeat\n10. Stop\n"
    assert texts(text, SegmenterConfig()) == [
        ("Steps:", LINE),
        ("\n1. Open the box.", SENTENCE),
        ("\n2. Take it out", LINE),
        ("\n- Enjoy", LINE),
        ("\n* Repeat", LINE),
        ("\n10. Stop", LINE),
        ("\n", WORD),
    ]


def test_a_number_is_a_list_marker_only_at_a_line_start() -> None:
    assert texts("1. Apples and pears") == [("1. Apples and pears", WORD)]
    assert texts("  2. Apples") == [("  2. Apples", WORD)]
    assert texts("Go.\n  3. Apples") == [("Go.", SENTENCE), ("\n  3. Apples", WORD)]
    assert texts("Go. 3. Apples") == [("Go.", SENTENCE), (" 3.", SENTENCE), (" Apples", WORD)]


def test_a_list_marker_is_recognised_after_a_reset() -> None:
    segmenter = Segmenter(PLAIN)
    assert released(segmenter.push("Say it. 1")) == ["Say it."]
    assert segmenter.reset() == (7, 9)
    assert segmenter.push("1. Apples ") == []
    assert released(segmenter.finish()) == ["1. Apples", " "]


# -- CJK ----------------------------------------------------------------------------------------


def test_cjk_sentences_need_no_whitespace() -> None:
    assert texts("你好。世界！「好」。然后，我们走吧、好吗？") == [
        ("你好。", SENTENCE),
        ("世界！", SENTENCE),
        ("「好」。", SENTENCE),
        ("然后，我们走吧、好吗？", SENTENCE),
    ]
    assert texts("他说：「你好。」然后走了。") == [
        ("他说：「你好。」", SENTENCE),
        ("然后走了。", SENTENCE),
    ]
    assert texts("こんにちは。 元気？") == [("こんにちは。", SENTENCE), (" 元気？", SENTENCE)]


def test_a_cjk_sentence_is_released_on_the_next_character() -> None:
    segmenter = Segmenter()
    assert segmenter.push("你好。") == []
    assert segmenter.push("世") == [Segment(0, 3, "你好。", SENTENCE, True)]
    assert segmenter.push("界。") == []
    assert segmenter.push("」") == []
    assert released(segmenter.flush()) == ["世界。」"]


def test_a_cjk_clause_can_end_the_short_first_segment() -> None:
    assert texts("今天的天气非常非常好，我们去公园散步吧。", SegmenterConfig()) == [
        ("今天的天气非常非常好，", CLAUSE),
        ("我们去公园散步吧。", SENTENCE),
    ]
    assert texts("今天天气很好，我们去公园吧。", SegmenterConfig()) == [
        ("今天天气很好，我们去公园吧。", SENTENCE)
    ]


# -- the short first segment ------------------------------------------------------------------


def test_the_first_segment_may_end_at_a_clause() -> None:
    text = "Well, I think that, maybe, we should go. Yes, indeed, we should."
    assert texts(text, SegmenterConfig()) == [
        ("Well, I think that,", CLAUSE),  # "Well," has fewer than 10 non-space characters
        (" maybe, we should go.", SENTENCE),
        (" Yes, indeed, we should.", SENTENCE),
    ]
    assert texts(text, PLAIN) == [
        ("Well, I think that, maybe, we should go.", SENTENCE),
        (" Yes, indeed, we should.", SENTENCE),
    ]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("I was going to—well, never mind.", "I was going to—"),
        ("I was going to — well, never mind.", "I was going to —"),
        ("Results for 2019–2020 – all good. Yes.", "Results for 2019–2020 –"),
        ("Here is the thing; we go. Yes.", "Here is the thing;"),
        ('"Listen to me," she said. Yes.', '"Listen to me,"'),
        ("Three things matter: time and money.", "Three things matter:"),
    ],
)
def test_clause_marks_of_the_short_first_segment(text: str, first: str) -> None:
    segments = run([text], SegmenterConfig())
    assert (segments[0].text, segments[0].boundary) == (first, CLAUSE)
    assert "".join(released(segments)) == text


def test_a_short_first_clause_waits_for_the_whitespace() -> None:
    segmenter = Segmenter()
    assert segmenter.push("Honestly speaking,") == []
    assert segmenter.push(" ") == [Segment(0, 18, "Honestly speaking,", CLAUSE, True)]
    assert segmenter.push("yes, really, we go, now. Again, then") == [
        Segment(18, 43, " yes, really, we go, now.", SENTENCE, False)
    ]


def test_the_min_chars_count_non_space_characters_before_the_boundary() -> None:
    config = SegmenterConfig(first_segment_min_chars=5, first_segment_max_chars=50, max_chars=50)
    assert texts("  Hi  y, there.", config) == [("  Hi  y, there.", SENTENCE)]
    assert texts("  Hi  yo, there.", config) == [("  Hi  yo,", CLAUSE), (" there.", SENTENCE)]


def test_the_first_segment_is_never_cut_at_a_bare_word_gap_to_save_time() -> None:
    text = "word " * 29 + "word."  # 149 characters, no clause
    segments = run([text], SegmenterConfig())
    assert [(s.text, s.boundary) for s in segments] == [(text, SENTENCE)]  # the whole sentence
    clauses = "Well then, " + "word " * 25 + "word, and more words."
    segments = run([clauses], SegmenterConfig(first_segment_min_chars=30))
    # The last clause mark within first_segment_max_chars (100) ends it, once long enough.
    assert [s.text for s in segments] == [
        "Well then, " + "word " * 25 + "word,",
        " and more words.",
    ]


@pytest.mark.parametrize("first_max", range(11, 40))
def test_a_sentence_end_just_past_the_first_segment_limit_still_ends_it(first_max: int) -> None:
    """A first segment that outgrows its limit with no clause mark to cut at goes on like any
    other segment; the sentence end it had just passed must still end it (found when the
    adaptive limit came out at 12 for "Good evening." and the segment ran on to a clause)."""
    config = SegmenterConfig(first_segment_max_chars=first_max)
    text = "Good evening. The harbour lay quiet in the last of the light, the boats slept."
    assert texts(text, config)[0] == ("Good evening.", SENTENCE)


def test_flush_starts_a_new_turn_with_a_short_first_segment() -> None:
    segmenter = Segmenter()
    text = "Well, I think that, maybe, we should go."
    assert released(segmenter.push(text + " And")) == [
        "Well, I think that,",
        " maybe, we should go.",
    ]
    assert segmenter.push(", you know, then") == []
    assert [(s.text, s.boundary, s.first_in_turn) for s in segmenter.flush()] == [
        (" And, you know, then", WORD, False)  # the turn's first segment was released before
    ]
    assert segmenter.first_in_turn
    assert released(segmenter.push("Well, I think that, maybe.")) == ["Well, I think that,"]


# -- long runs ----------------------------------------------------------------------------------


def small(max_chars: int) -> SegmenterConfig:
    return SegmenterConfig(
        max_chars=max_chars,
        short_first_segment=False,
        first_segment_min_chars=1,
        first_segment_max_chars=max_chars,
    )


def test_a_long_run_splits_at_the_last_clause_then_a_word_gap() -> None:
    text = "one two, three four; five six seven eight nine ten."
    assert texts(text, small(30)) == [
        ("one two, three four;", CLAUSE),
        (" five six seven eight nine", WORD),
        (" ten.", SENTENCE),
    ]


def test_a_long_run_splits_after_an_em_dash_or_cjk_clause_mark_without_whitespace() -> None:
    assert texts("aaaa bbbb—cccc dddd eeee ffff gggg", small(20)) == [
        ("aaaa bbbb—", CLAUSE),
        ("cccc dddd eeee ffff", WORD),
        (" gggg", WORD),
    ]
    assert texts("我们今天、明天和后天都要去公园散步吧", small(10)) == [
        ("我们今天、", CLAUSE),
        ("明天和后天都要去公园", HARD),
        ("散步吧", WORD),
    ]


def test_a_long_run_without_a_gap_is_cut_hard() -> None:
    assert texts("abcdefghijklmnopqrstuvwxyz.", small(10)) == [
        ("abcdefghij", HARD),
        ("klmnopqrst", HARD),
        ("uvwxyz.", SENTENCE),
    ]
    assert texts("   abcdefghijklm", small(10)) == [("   abcdefg", HARD), ("hijklm", WORD)]


def test_a_hard_cut_keeps_combining_marks_and_emoji_sequences_whole() -> None:
    assert texts("abcdefghie\u0301xyz", small(10)) == [
        ("abcdefghi", HARD),
        ("e\u0301xyz", WORD),
    ]
    assert texts("abcdefgh👩\u200d💻xyz", small(10)) == [
        ("abcdefgh", HARD),
        ("👩\u200d💻xyz", WORD),
    ]
    assert texts("abcdefghi👍🏽xyz", small(10)) == [("abcdefghi", HARD), ("👍🏽xyz", WORD)]


def test_a_long_run_is_decided_only_once_more_than_the_limit_is_known() -> None:
    segmenter = Segmenter(small(10))
    assert segmenter.push("abcdefghi.") == []  # 10 characters: may still end naturally
    assert segmenter.push(" ") == [Segment(0, 10, "abcdefghi.", SENTENCE, True)]
    assert segmenter.push("abc defgh") == []  # " abc defgh": 10 characters
    assert segmenter.push("i") == [Segment(10, 14, " abc", WORD, False)]
    assert segmenter.push("jkl") == []  # " defghijkl": 10 characters
    assert segmenter.push("m") == [Segment(14, 24, " defghijkl", HARD, False)]
    assert segmenter.finish() == [Segment(24, 25, "m", WORD, False)]


def test_a_boundary_right_at_the_limit_wins_over_a_split() -> None:
    assert texts("aaa, bbbbb\nccc", small(10)) == [("aaa, bbbbb", LINE), ("\nccc", WORD)]
    assert texts("aaa, bbbb. ccc", small(10)) == [("aaa, bbbb.", SENTENCE), (" ccc", WORD)]
    assert texts("aaa, bbbbb. ccc", small(10)) == [
        ("aaa,", CLAUSE),
        (" bbbbb.", SENTENCE),
        (" ccc", WORD),
    ]


def test_whitespace_longer_than_the_limit_is_the_one_blank_exception() -> None:
    # A segment may not exceed max_chars, so a gap longer than that yields blank segments.
    assert texts("Hi." + " " * 25 + "Bye.", small(10)) == [
        ("Hi.", SENTENCE),
        (" " * 10, WORD),
        (" " * 10, WORD),
        ("     Bye.", SENTENCE),
    ]


# -- flush, finish, reset -----------------------------------------------------------------------


def test_flush_releases_the_pending_text_and_starts_a_new_turn() -> None:
    segmenter = Segmenter()
    assert segmenter.push("Hello world") == []
    assert segmenter.flush() == [Segment(0, 11, "Hello world", WORD, True)]
    assert segmenter.first_in_turn
    assert segmenter.push("Again. More") == [Segment(11, 17, "Again.", SENTENCE, True)]
    assert segmenter.push(" text") == []
    assert segmenter.flush() == [Segment(17, 27, " More text", WORD, False)]
    assert segmenter.first_in_turn
    assert segmenter.flush() == []


def test_flush_keeps_blank_text_pending_as_leading_whitespace() -> None:
    segmenter = Segmenter()
    assert released(segmenter.push("Hello there  ")) == []
    assert segmenter.flush() == [Segment(0, 11, "Hello there", WORD, True)]
    assert segmenter.pending_text == "  "
    assert segmenter.push("\n") == []
    assert segmenter.flush() == []
    assert segmenter.pending_start == 11
    assert segmenter.push("Yo.") == []
    assert segmenter.finish() == [Segment(11, 17, "  \nYo.", SENTENCE, True)]


@pytest.mark.parametrize(
    ("text", "boundary"),
    [
        ("Hello world", WORD),
        ("Hello world,", CLAUSE),
        ("Hi there —", CLAUSE),
        ('He said "hi."', SENTENCE),
        ("He said (hi!)", SENTENCE),
        ("你好。", SENTENCE),
        ("Apples etc.", SENTENCE),
        ("Mr.", SENTENCE),
        ("Hmm...", SENTENCE),
    ],
)
def test_flushed_text_is_classified_by_how_it_ends(text: str, boundary: Boundary) -> None:
    segmenter = Segmenter()
    assert segmenter.push(text) == []
    assert [(s.text, s.boundary) for s in segmenter.flush()] == [(text.rstrip(), boundary)]


def test_flush_decides_what_was_waiting_for_lookahead() -> None:
    segmenter = Segmenter(PLAIN)
    assert segmenter.push("Apples etc. ") == []
    assert released(segmenter.flush()) == ["Apples etc."]
    assert segmenter.push("pears... ") == []
    assert segmenter.flush() == [Segment(11, 20, " pears...", SENTENCE, True)]


def test_finish_covers_the_trailing_whitespace() -> None:
    segmenter = Segmenter()
    assert released(segmenter.push("Done.  ")) == ["Done."]
    final = segmenter.finish()
    assert final == [Segment(5, 7, "  ", WORD, False)]
    assert final[0].blank
    assert segmenter.finished
    assert segmenter.finish() == []
    assert segmenter.flush() == []
    with pytest.raises(RuntimeError, match="after finish"):
        segmenter.push("more")


def test_finish_of_text_with_trailing_whitespace() -> None:
    assert texts("Hello world  ") == [("Hello world", WORD), ("  ", WORD)]
    assert texts("Hello world \n ") == [("Hello world", LINE), (" \n ", WORD)]
    assert texts("") == []
    assert texts("   ") == [("   ", WORD)]


def test_reset_drops_the_pending_text_and_starts_a_new_turn() -> None:
    segmenter = Segmenter()
    assert released(segmenter.push("Hello there. How are")) == ["Hello there."]
    assert segmenter.reset() == (12, 20)
    assert (segmenter.pending_text, segmenter.pending_start, segmenter.received) == ("", 20, 20)
    assert segmenter.reset() == (20, 20)
    assert segmenter.push("New text. ") == [Segment(20, 29, "New text.", SENTENCE, True)]


def test_segment_blank() -> None:
    assert Segment(0, 2, " \n", WORD, False).blank
    assert not Segment(0, 3, " a ", WORD, False).blank


def test_push_of_nothing_releases_nothing() -> None:
    segmenter = Segmenter()
    assert segmenter.push("Hi. ") == [Segment(0, 3, "Hi.", SENTENCE, True)]
    assert segmenter.push("") == []
    assert segmenter.received == 4


# -- properties ---------------------------------------------------------------------------------

_WORDS = st.sampled_from(
    ["hello", "World", "the", "I", "a", "naïve", "café", "x", "OK", "don't", "e\u0301t\u00e9"]
)
_ABBREVIATIONS = st.sampled_from(
    ["Mr.", "Dr.", "e.g.", "i.e.", "etc.", "Inc.", "No.", "U.S.A.", "a.m.", "J.", "vs.", "St."]
)
_NUMBERS = st.sampled_from(["3.14", "1,000.5", "42", "v2.0.1", "1.", "12.", "2019–2020", "10:30"])
_ADDRESSES = st.sampled_from(
    ["https://x.org/a.b?c=1", "example.com", "jane.doe@mail.com", "http://a.b/c.d.", "x.org/a."]
)
_PUNCTUATION = st.sampled_from([*".!?…‼,;:—–-*", "...", "?!", *"。！？、，；："])
_QUOTES = st.sampled_from(
    ['"', "'", "“", "”", "‘", "’", "(", ")", "«", "»", "「", "」", "【", "】"]
)
_CJK = st.sampled_from(["你好", "世界", "我们", "こんにちは", "元気"])
_EMOJI = st.sampled_from(["👍", "👩\u200d💻", "🇫🇷", "👍🏽", "❤\ufe0f"])
_LONG_WORDS = st.text(st.sampled_from("abcxyzé\u0301"), min_size=10, max_size=60)
_TOKENS = st.one_of(
    _WORDS,
    st.builds(operator.add, _WORDS, _PUNCTUATION),  # "word," "word." "word?!" ...
    _ABBREVIATIONS,
    _NUMBERS,
    _ADDRESSES,
    _PUNCTUATION,
    _QUOTES,
    _CJK,
    _EMOJI,
    _LONG_WORDS,
)
# Whitespace runs stay short (at most 2 characters) so that no segment needs to be blank.
_SEPARATORS = st.one_of(
    st.just(" "), st.sampled_from(["", "  ", "\n", "\n\n", "\t", "\r\n", "\u3000", " \n"])
)
TEXTS = st.lists(st.tuples(_TOKENS, _SEPARATORS), min_size=5, max_size=80).map(
    lambda pairs: "".join(token + separator for token, separator in pairs)
)


@st.composite
def configs(draw: st.DrawFn) -> SegmenterConfig:
    max_chars = draw(st.sampled_from([300, draw(st.integers(5, 80))]))
    first_max = draw(st.integers(5, min(max_chars, 120)))
    return SegmenterConfig(
        max_chars=max_chars,
        short_first_segment=draw(st.booleans()),
        first_segment_min_chars=draw(st.integers(1, first_max - 1)),
        first_segment_max_chars=first_max,
    )


def cut(text: str, positions: Iterable[int]) -> list[str]:
    bounds = [0, *sorted(set(positions)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if a < b]


def positions(text: str) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(text)), max_size=max(1, len(text) // 3))


def check_cover(text: str, segments: list[Segment], config: SegmenterConfig) -> None:
    """Segments are contiguous, cover the text, respect the limits, and only the last is blank."""
    assert "".join(released(segments)) == text
    assert [segment.start for segment in segments[:1]] == ([0] if text else [])
    for before, after in itertools.pairwise(segments):
        assert before.end == after.start
    for index, segment in enumerate(segments):
        assert segment.text == text[segment.start : segment.end]
        assert 0 < len(segment.text) <= config.max_chars
        following = segments[index + 1] if index + 1 < len(segments) else None
        if segment.first_in_turn and following is not None and not following.first_in_turn:
            # Cut while its sentence goes on: never at a bare word gap within its short limit
            # when max_chars would have taken the next word too.
            next_word = re.match(r"\s*\S+", text[segment.end :])
            longer = len(segment.text) + (next_word.end() if next_word else 0)
            cut_to_save_time = (
                next_word is not None
                and longer <= config.max_chars
                and len(segment.text) <= config.first_segment_max_chars
            )
            assert not (
                config.short_first_segment and cut_to_save_time and segment.boundary is WORD
            )
        assert not segment.blank or index == len(segments) - 1
        assert segment.blank or not segment.text[-1].isspace()


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, config=configs(), data=st.data())
def test_any_fragmentation_gives_the_same_segments(
    text: str, config: SegmenterConfig, data: st.DataObject
) -> None:
    whole = run([text], config)
    pieces = cut(text, data.draw(positions(text), label="cuts"))
    assert run(pieces, config) == whole
    assert run(text, config) == whole  # one code point at a time


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, config=configs())
def test_segments_cover_the_text_exactly(text: str, config: SegmenterConfig) -> None:
    segments = run([text], config)
    check_cover(text, segments, config)
    assert [segment.first_in_turn for segment in segments] == [
        index == 0 for index in range(len(segments))
    ]


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, config=configs(), data=st.data())
def test_flushes_at_the_same_places_give_the_same_segments(
    text: str, config: SegmenterConfig, data: st.DataObject
) -> None:
    flushes = data.draw(positions(text), label="flushes")
    chunks = cut(text, flushes)
    expected = run(chunks, config, flush_after=True)
    check_cover(text, expected, config)

    segmenter = Segmenter(config)
    segments: list[Segment] = []
    turn_started = True
    for chunk in chunks:
        for piece in cut(chunk, data.draw(positions(chunk), label="cuts")):
            new = segmenter.push(piece)
            assert [s.first_in_turn for s in new] == [
                turn_started and i == 0 for i in range(len(new))
            ]
            turn_started = turn_started and not new
            segments += new
        new = segmenter.flush()
        assert [s.first_in_turn for s in new] == [turn_started and i == 0 for i in range(len(new))]
        assert all(not s.blank and not s.text[-1].isspace() for s in new)
        segments += new
        turn_started = True
    segments += segmenter.finish()
    assert segments == expected
