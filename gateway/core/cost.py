"""What speech costs: a price table, estimates before synthesis, and a meter during it (no I/O).

Hosted providers bill per character of input text (OpenAI ``tts-1``, ElevenLabs) or per minute
of audio produced (OpenAI ``gpt-4o-mini-tts``, whose token price works out to an advertised
per-minute figure). A :class:`Price` holds both rates, so a mixed price is the sum of the two.
Prices are looked up by ``"<backend name>/<model>"``, then ``"<kind>/<model>"``, then
``"<kind>/*"`` (a :class:`PriceKey`); local engines (kinds that are not hosted) cost nothing in
money and are reported with the seconds of compute they used.

A price that cannot be found for a hosted backend is *unknown* (``None``), never a silent 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "DEFAULT_PRICES",
    "FREE",
    "CostEstimate",
    "CostMeter",
    "CostSettings",
    "Price",
    "PriceKey",
    "backend_price",
    "billable_chars",
    "combined_snapshot",
    "estimate_cost",
    "estimate_for_backend",
    "find_price",
]


@dataclass(frozen=True, slots=True)
class Price:
    """List prices in US dollars; a price may combine both rates."""

    usd_per_million_chars: float = 0.0
    usd_per_minute: float = 0.0

    def __post_init__(self) -> None:
        for name in ("usd_per_million_chars", "usd_per_minute"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}: must be a finite number >= 0, got {value}")

    def of(self, *, chars: int, audio_s: float) -> float:
        """The price of ``chars`` characters of input that produced ``audio_s`` seconds."""
        return chars / 1e6 * self.usd_per_million_chars + audio_s / 60 * self.usd_per_minute


FREE: Final = Price()

# List prices taken on 2026-11-26. Where a provider's own price page could not be read from
# here, the source is a third-party page quoting it; see the comments in config.toml.
DEFAULT_PRICES: Final[Mapping[str, Price]] = {
    "openai/tts-1": Price(usd_per_million_chars=15.0),
    "openai/tts-1-hd": Price(usd_per_million_chars=30.0),
    "openai/gpt-4o-mini-tts": Price(usd_per_minute=0.015),
    "elevenlabs/eleven_flash_v2_5": Price(usd_per_million_chars=50.0),
    "elevenlabs/eleven_flash_v2": Price(usd_per_million_chars=50.0),
    "elevenlabs/eleven_turbo_v2_5": Price(usd_per_million_chars=50.0),
    "elevenlabs/eleven_turbo_v2": Price(usd_per_million_chars=50.0),
    "elevenlabs/eleven_multilingual_v2": Price(usd_per_million_chars=100.0),
    "elevenlabs/eleven_v3": Price(usd_per_million_chars=100.0),
}


def _default_prices() -> dict[str, Price]:
    return dict(DEFAULT_PRICES)


@dataclass(frozen=True, slots=True)
class CostSettings:
    """The ``[cost]`` section: the price table and the speaking rate used by estimates."""

    speech_chars_per_minute: float = 900.0
    prices: Mapping[str, Price] = field(default_factory=_default_prices)

    def __post_init__(self) -> None:
        rate = self.speech_chars_per_minute
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"speech_chars_per_minute: must be greater than 0, got {rate}")
        for key in self.prices:
            backend, _, model = key.partition("/")
            if not backend or not model:
                raise ValueError(
                    f"prices: key {key!r} must be '<kind or backend name>/<model or *>'"
                )


@dataclass(frozen=True, slots=True)
class PriceKey:
    """What a backend's price is looked up by: its name, its kind and the provider's model it
    bills as (None for a local engine); ``hosted``: its kind bills per use (a price must be
    known), else it is free unless the table says otherwise."""

    backend: str
    kind: str
    model: str | None = None
    hosted: bool = False


def find_price(
    prices: Mapping[str, Price], *, backend: str, kind: str, model: str | None, hosted: bool
) -> Price | None:
    """The price of a backend: by name and model, by kind and model, by kind; None if unknown.

    A kind that is not ``hosted`` is free unless the table says otherwise.
    """
    candidates = [f"{backend}/*", f"{kind}/*"]
    if model:
        candidates = [f"{backend}/{model}", f"{kind}/{model}", *candidates]
    for key in candidates:
        if key in prices:
            return prices[key]
    return None if hosted else FREE


def backend_price(cost: CostSettings, key: PriceKey) -> Price | None:
    """The price of the backend ``key`` names (None: unknown)."""
    return find_price(
        cost.prices, backend=key.backend, kind=key.kind, model=key.model or None, hosted=key.hosted
    )


def billable_chars(text: str) -> int:
    """Characters a provider bills for ``text``: the remote backends send it stripped."""
    return len(text.strip())


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """A cost before synthesis. ``usd`` is None when the price is unknown."""

    chars: int
    audio_s: float  # estimated from the speaking rate
    usd: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "chars": self.chars,
            "audio_s": round(self.audio_s, 2),
            "cost_usd": None if self.usd is None else round(self.usd, 6),
        }


def estimate_cost(
    text: str, price: Price | None, *, speed: float = 1.0, chars_per_minute: float = 900.0
) -> CostEstimate:
    """Estimate what speaking ``text`` at ``speed`` costs, before synthesis.

    Per-character prices are exact up to the provider's counting; per-minute prices depend on
    an audio length estimated from ``chars_per_minute`` (at speed 1.0).
    """
    if speed <= 0 or chars_per_minute <= 0:
        raise ValueError("speed and chars_per_minute must be greater than 0")
    chars = billable_chars(text)
    audio_s = chars / chars_per_minute * 60 / speed
    usd = None if price is None else price.of(chars=chars, audio_s=audio_s)
    return CostEstimate(chars, audio_s, usd)


def estimate_for_backend(
    cost: CostSettings, key: PriceKey, text: str, *, speed: float = 1.0
) -> CostEstimate:
    """What speaking ``text`` on the backend ``key`` names would cost (``estimate``)."""
    price = backend_price(cost, key)
    return estimate_cost(text, price, speed=speed, chars_per_minute=cost.speech_chars_per_minute)


@dataclass(slots=True)
class CostMeter:
    """Cost so far of one session or request, fed one segment at a time.

    ``add_segment`` takes what was sent and received: the characters of a segment whose audio
    came back (the provider billed them), the seconds of audio received and the seconds the
    backend computed (wall time waiting on it: for a local engine, its compute time).
    """

    price: Price | None
    chars: int = 0
    audio_s: float = 0.0
    compute_s: float = 0.0
    segments: int = 0

    @classmethod
    def for_backend(cls, cost: CostSettings, key: PriceKey) -> CostMeter:
        return cls(backend_price(cost, key))

    def add_segment(self, *, chars: int, audio_s: float, compute_s: float) -> float | None:
        """Account for one segment; returns its cost (None if the price is unknown)."""
        if chars < 0 or audio_s < 0 or compute_s < 0:
            raise ValueError("chars, audio_s and compute_s must not be negative")
        self.chars += chars
        self.audio_s += audio_s
        self.compute_s += compute_s
        self.segments += 1
        return None if self.price is None else self.price.of(chars=chars, audio_s=audio_s)

    @property
    def usd(self) -> float | None:
        """The cost so far; None if the price is unknown."""
        if self.price is None:
            return None
        return self.price.of(chars=self.chars, audio_s=self.audio_s)

    def snapshot(self) -> dict[str, Any]:
        """The figures for a progress message or the final metrics."""
        usd = self.usd
        return {
            "cost_usd": None if usd is None else round(usd, 6),
            "billed_chars": self.chars,
            "billed_audio_s": round(self.audio_s, 3),
            "compute_s": round(self.compute_s, 3),
        }


def combined_snapshot(meters: Iterable[CostMeter]) -> dict[str, Any]:
    """:meth:`CostMeter.snapshot` over several meters (a session that switched backends).

    The cost is unknown (None) if a meter that counted something has an unknown price.
    """
    meters = list(meters)
    unknown = any(meter.segments and meter.usd is None for meter in meters)
    # Sums start at 0.0: with no meter yet the figures are still floats (0.0, not 0).
    usd = None if unknown else sum((meter.usd or 0.0 for meter in meters), 0.0)
    return {
        "cost_usd": None if usd is None else round(usd, 6),
        "billed_chars": sum(m.chars for m in meters),
        "billed_audio_s": round(sum((m.audio_s for m in meters), 0.0), 3),
        "compute_s": round(sum((m.compute_s for m in meters), 0.0), 3),
    }
