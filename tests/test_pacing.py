"""Adaptive chunking: the synthesis-time model and the sizes it chooses."""

from __future__ import annotations

import pytest

from gateway.core.pacing import SynthesisTimeModel, first_segment_chars, merge_budget_chars


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
