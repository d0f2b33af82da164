"""Adaptive chunking: the synthesis-time model and the sizes it chooses."""

from __future__ import annotations

import math

import pytest

from gateway.core.pacing import (
    ModelShare,
    SynthesisTimeModel,
    call_budget_chars,
    fair_call_s,
    first_segment_chars,
    merge_budget_chars,
    part_end,
    word_gap_end,
)


def test_the_model_learns_fixed_cost_and_rate() -> None:
    model = SynthesisTimeModel()
    for chars in (10, 50, 100, 20, 80, 150, 30):
        model.observe(chars, 0.25 + 0.008 * chars)
    assert model.fixed_s == pytest.approx(0.25, abs=1e-6)
    assert model.per_char_s == pytest.approx(0.008, rel=1e-6)
    assert model.seconds(100) == pytest.approx(1.05, rel=1e-6)


def test_recent_calls_weigh_more() -> None:
    model = SynthesisTimeModel(decay=0.5)
    for chars in (10, 50, 100):
        model.observe(chars, 0.1 + 0.01 * chars)
    for chars in (10, 50, 100, 10, 50, 100, 10, 50, 100):  # the machine got busier
        model.observe(chars, 0.2 + 0.02 * chars)
    assert model.per_char_s == pytest.approx(0.02, rel=0.05)


def test_one_length_only_fits_the_rate() -> None:
    model = SynthesisTimeModel(fixed_s=0.2, per_char_s=0.01)
    model.observe(40, 0.6)
    model.observe(40, 0.6)
    assert model.fixed_s == 0.2
    assert model.per_char_s == pytest.approx(0.01)


def test_first_segment_fits_the_latency_target() -> None:
    model = SynthesisTimeModel(fixed_s=0.22, per_char_s=0.008)
    chars = first_segment_chars(model, 0.4, lowest=12, highest=100)
    assert chars == 22
    assert model.seconds(chars) <= 0.4
    slow = SynthesisTimeModel(fixed_s=0.5, per_char_s=0.05)
    assert first_segment_chars(slow, 0.4, lowest=12, highest=100) == 12
    fast = SynthesisTimeModel(fixed_s=0.0, per_char_s=0.0001)
    assert first_segment_chars(fast, 0.4, lowest=12, highest=100) == 100


def test_merging_grows_with_the_buffer() -> None:
    model = SynthesisTimeModel(fixed_s=0.2, per_char_s=0.01)
    assert merge_budget_chars(model, 0.3, 0.4, highest=600) == 0  # nearly dry: no merging
    small = merge_budget_chars(model, 2.0, 0.4, highest=600)
    large = merge_budget_chars(model, 5.0, 0.4, highest=600)
    assert 0 < small < large <= 600
    assert model.seconds(small) <= 2.0 - 0.4


SENTENCE = "The night train left the city a little after ten, and most passengers were asleep."


@pytest.mark.parametrize(
    ("budget", "head"),
    [
        (len(SENTENCE), SENTENCE),  # fits: one call
        (60, "The night train left the city a little after ten, "),  # at the clause
        # No clause mark within the budget: the shortest call ending at one, never at a bare
        # word gap.
        (40, "The night train left the city a little after ten, "),
        (30, "The night train left the city a little after ten, "),
    ],
)
def test_a_long_segment_is_cut_at_a_clause_mark_only(budget: int, head: str) -> None:
    end = part_end(SENTENCE, budget, min_chars=8)
    assert SENTENCE[:end] == head


def test_no_cut_inside_numbers_urls_or_too_near_an_end() -> None:
    text = "It cost 3,000 dollars in all, and then some more"
    assert text[: part_end(text, 35, min_chars=3)] == "It cost 3,000 dollars in all, "
    # "3,000" is no clause mark: the first one is after "all".
    assert text[: part_end(text, 12, min_chars=3)] == "It cost 3,000 dollars in all, "
    assert part_end("It cost 3,000 dollars in all", 12, min_chars=3) == len(
        "It cost 3,000 dollars in all"
    )
    url = "See http://a.example/x,y:z for the details, of it all and more"
    assert url[: part_end(url, 50, min_chars=3)] == "See http://a.example/x,y:z for the details, "
    assert part_end("Short, then the rest goes on", 10, min_chars=8) == len(
        "Short, then the rest goes on"
    )
    assert part_end("Go on and on and on, ok", 21, min_chars=3) == len("Go on and on and on, ok")
    assert part_end("一二三四五、六七八九十", 6, min_chars=3) == 6


def test_word_gap_end_is_the_last_gap_within_the_budget() -> None:
    text = "one two three four five six"
    assert word_gap_end(text, 14, min_chars=3) == len("one two three ")
    assert word_gap_end(text, 13, min_chars=3) == len("one two ")
    assert word_gap_end(text, 7, min_chars=3) == len("one ")
    assert word_gap_end(text, 7, min_chars=4) is None  # "one" is too short to stand alone
    assert word_gap_end(text, 30, min_chars=8) == len("one two three ")  # "five six" is short
    assert word_gap_end("unbroken", 5, min_chars=1) is None
    # At least ``min_words`` words on each side.
    assert word_gap_end(text, 30, min_chars=1, min_words=3) == len("one two three ")
    assert word_gap_end(text, 30, min_chars=1, min_words=4) is None


def test_fair_call_keeps_every_listener_supplied() -> None:
    # Buffers 1.0, 2.0, 8.0 s, margin 0.2: the most urgent allows 0.8 s, the next two calls in
    # 1.8 s (0.9 each), the third three in 7.8 s: the first binds.
    assert fair_call_s([8.0, 1.0, 2.0], 0.2) == pytest.approx(0.8)
    # Four sessions with about a second each: a quarter of the smallest slack each.
    assert fair_call_s([1.2, 1.2, 1.2, 1.2], 0.2) == pytest.approx(0.25)
    # About to run dry or dry already: served first, so left out.
    assert fair_call_s([0.1], 0.2) == math.inf
    assert fair_call_s([0.0, 0.15, 1.2], 0.2) == pytest.approx(1.0)
    assert fair_call_s([], 0.2) == math.inf


def test_fair_call_counts_the_calls_a_model_runs_at_once() -> None:
    # Two lanes: the first two are served by the first round of calls, the next two by the
    # second; four sessions with 1.2 s each may take half their slack per call, not a quarter.
    assert fair_call_s([1.2, 1.2, 1.2, 1.2], 0.2, lanes=2) == pytest.approx(0.5)
    assert fair_call_s([1.2, 1.2, 1.2], 0.2, lanes=2) == pytest.approx(0.5)
    assert fair_call_s([8.0, 1.0, 2.0], 0.2, lanes=2) == pytest.approx(0.8)
    assert ModelShare(lanes=2).call_s(1.2, 0.2, member="alone") == pytest.approx(1.0)


def test_model_share_counts_only_competing_members() -> None:
    share = ModelShare()
    buffers: dict[str, float | None] = {"a": 1.2, "b": None, "c": 1.2}
    for name in buffers:
        share.join(name, lambda name=name: buffers[name])  # type: ignore[misc]
    assert len(share) == 3
    # "b" is not playing: "a" and "c" share, "a" asks with its own 1.2 s.
    assert share.call_s(1.2, 0.2, member="a") == pytest.approx(0.5)
    share.leave("c")
    assert share.call_s(1.2, 0.2, member="a") == pytest.approx(1.0)
    share.leave("c")  # leaving twice is harmless


def test_call_budget_turns_time_into_characters() -> None:
    model = SynthesisTimeModel(fixed_s=0.1, per_char_s=0.01)
    assert call_budget_chars(model, 1.1, highest=500) == 100
    assert call_budget_chars(model, 1.1, highest=50) == 50
    assert call_budget_chars(model, 0.05, highest=500) == 0
