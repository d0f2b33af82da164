"""The cost model: price lookup, estimates before synthesis, the meter, the [cost] config."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gateway.backends.registry import settings_price_key as key
from gateway.backends.settings import (
    AllTalkSettings,
    ElevenLabsSettings,
    KokoroOnnxSettings,
    OpenAISettings,
)
from gateway.config import ConfigError, load_config
from gateway.core.cost import (
    DEFAULT_PRICES,
    CostMeter,
    CostSettings,
    Price,
    backend_price,
    billable_chars,
    estimate_cost,
    estimate_for_backend,
    find_price,
)

REPO = Path(__file__).resolve().parent.parent


def test_lookup_prefers_the_backend_name_then_the_kind_then_a_wildcard() -> None:
    prices = {
        "openai/tts-1": Price(usd_per_million_chars=15.0),
        "cheap/tts-1": Price(usd_per_million_chars=1.0),
        "openai/*": Price(usd_per_million_chars=7.0),
    }
    assert find_price(prices, backend="cheap", kind="openai", model="tts-1", hosted=True) == Price(
        1.0
    )
    assert find_price(prices, backend="openai", kind="openai", model="tts-1", hosted=True) == Price(
        15.0
    )
    assert find_price(prices, backend="openai", kind="openai", model="other", hosted=True) == Price(
        7.0
    )


def test_hosted_backends_without_a_price_are_unknown_and_local_ones_free() -> None:
    assert find_price({}, backend="openai", kind="openai", model="kokoro", hosted=True) is None
    assert (
        find_price({}, backend="el", kind="elevenlabs", model="eleven_flash_v2_5", hosted=True)
        is None
    )
    assert find_price({}, backend="kokoro", kind="kokoro_onnx", model=None, hosted=False) == Price()
    assert (
        find_price({}, backend="alltalk_gpu", kind="alltalk", model=None, hosted=False) == Price()
    )


def test_default_prices_cover_the_default_models() -> None:
    for kind, model in (("openai", "gpt-4o-mini-tts"), ("elevenlabs", "eleven_flash_v2_5")):
        price = find_price(DEFAULT_PRICES, backend=kind, kind=kind, model=model, hosted=True)
        assert price is not None
        assert price.usd_per_million_chars + price.usd_per_minute > 0


def test_per_character_estimate_is_exact() -> None:
    text = "  " + "x" * 1000 + "\n"  # the remote backends send the text stripped
    estimate = estimate_cost(text, Price(usd_per_million_chars=15.0))
    assert estimate.chars == 1000 == billable_chars(text)
    assert estimate.usd == pytest.approx(0.015)


def test_per_minute_estimate_follows_the_speaking_rate_and_speed() -> None:
    price = Price(usd_per_minute=0.015)
    normal = estimate_cost("y" * 900, price, chars_per_minute=900)
    assert normal.audio_s == pytest.approx(60)
    assert normal.usd == pytest.approx(0.015)
    fast = estimate_cost("y" * 900, price, speed=2.0, chars_per_minute=900)
    assert fast.audio_s == pytest.approx(30)
    assert fast.usd == pytest.approx(0.0075)
    assert estimate_cost("y", None).usd is None
    assert estimate_cost("y", None).as_dict()["cost_usd"] is None
    with pytest.raises(ValueError, match="greater than 0"):
        estimate_cost("y", price, speed=0)


def test_meter_accumulates_segments_and_reports_each() -> None:
    meter = CostMeter(Price(usd_per_million_chars=100.0, usd_per_minute=0.6))
    first = meter.add_segment(chars=1000, audio_s=30.0, compute_s=0.5)
    second = meter.add_segment(chars=500, audio_s=6.0, compute_s=0.25)
    assert first == pytest.approx(0.1 + 0.3)
    assert second == pytest.approx(0.05 + 0.06)
    assert first is not None
    assert second is not None
    assert meter.usd == pytest.approx(first + second)
    snapshot = meter.snapshot()
    assert snapshot == {
        "cost_usd": round(0.51, 6),
        "billed_chars": 1500,
        "billed_audio_s": 36.0,
        "compute_s": 0.75,
    }
    with pytest.raises(ValueError, match="negative"):
        meter.add_segment(chars=-1, audio_s=0, compute_s=0)


def test_local_meter_costs_nothing_but_counts_compute_time() -> None:
    meter = CostMeter(Price())
    meter.add_segment(chars=300, audio_s=20.0, compute_s=3.5)
    assert meter.usd == 0.0
    assert meter.snapshot()["compute_s"] == 3.5
    unknown = CostMeter(None)
    assert unknown.add_segment(chars=10, audio_s=1.0, compute_s=0.1) is None
    assert unknown.snapshot()["cost_usd"] is None


def test_price_and_settings_validation() -> None:
    with pytest.raises(ValueError, match="usd_per_minute"):
        Price(usd_per_minute=-1)
    with pytest.raises(ValueError, match="usd_per_million_chars"):
        Price(usd_per_million_chars=math.inf)
    with pytest.raises(ValueError, match="'<kind or backend name>/<model or \\*>'"):
        CostSettings(prices={"tts-1": Price()})
    with pytest.raises(ValueError, match="speech_chars_per_minute"):
        CostSettings(speech_chars_per_minute=0)


def test_repository_config_holds_the_default_price_table() -> None:
    config = load_config(REPO / "config.toml", environ={})
    assert dict(config.cost.prices) == dict(DEFAULT_PRICES)


def test_price_table_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "[cost]\nspeech_chars_per_minute = 800.0\n"
        '[cost.prices]\n"openai/tts-1" = { usd_per_million_chars = 12.5 }\n'
        '"openai_local/*" = {}\n'
    )
    config = load_config(path, environ={"TTSGW_COST__SPEECH_CHARS_PER_MINUTE": "700"})
    assert config.cost.speech_chars_per_minute == 700.0
    assert config.cost.prices == {"openai/tts-1": Price(12.5), "openai_local/*": Price()}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[cost.prices]\n"openai/x" = { usd = 1 }\n', "cost.prices.openai/x.usd: unknown setting"),
        (
            '[cost.prices]\n"openai/x" = { usd_per_minute = "a" }\n',
            "cost.prices.openai/x.usd_per_minute: must be a number",
        ),
        ('[cost.prices]\n"openai/x" = 3\n', "cost.prices.openai/x: must be a table"),
        ('[cost.prices]\n"x" = {}\n', "cost.prices: key 'x' must be"),
        (
            '[cost.prices]\n"a/b" = { usd_per_minute = -2.0 }\n',
            "cost.prices.a/b.usd_per_minute: must be a finite number >= 0",
        ),
    ],
)
def test_bad_prices_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert message in str(caught.value)


def test_estimates_and_meters_for_configured_backends() -> None:
    cost = CostSettings()
    tts1 = estimate_for_backend(cost, key("openai", OpenAISettings(model="tts-1")), "x" * 2000)
    assert tts1.usd == pytest.approx(0.03)
    minutes = estimate_for_backend(cost, key("openai", OpenAISettings()), "x" * 900, speed=1.5)
    assert minutes.usd == pytest.approx(0.015 / 1.5)
    assert estimate_for_backend(cost, key("kokoro", KokoroOnnxSettings()), "Hello.").usd == 0.0
    local = OpenAISettings(base_url="http://127.0.0.1:8765", model="kokoro")
    assert estimate_for_backend(cost, key("local", local), "Hello.").usd is None
    assert backend_price(cost, key("at", AllTalkSettings())) == Price()
    meter = CostMeter.for_backend(cost, key("el", ElevenLabsSettings()))
    assert meter.add_segment(chars=1000, audio_s=60.0, compute_s=1.0) == pytest.approx(0.05)
