"""Voice blends: a voice name like ``jf_alpha(2)+jm_kumo(1)`` is a weighted mix of voices.

The syntax, in one place for every backend that mixes voices (the Kokoro backends)::

    blend  = part ("+" part)*
    part   = voice ["(" weight ")"]
    weight = a positive decimal number: 2, 0.5, .25 (default 1)

Spaces around names, weights and ``+`` are ignored; a voice may appear only once. Weights are
normalized to sum to 1, so ``a(2)+b(1)`` and ``a(4)+b(2)`` are the same mix: two thirds of
``a`` and one third of ``b``. Pure: parsing knows no voices; :func:`resolve_blend` checks the
names against the voices a backend has.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from gateway.core.errors import VoiceBlendError

__all__ = ["Blend", "VoiceBlendError", "parse_blend", "resolve_blend"]

_PART: Final = re.compile(r"\s*([^\s()+]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*")
_WEIGHT: Final = re.compile(r"\d+(?:\.\d*)?|\.\d+")


@dataclass(frozen=True, slots=True)
class Blend:
    """A parsed blend: each voice with its normalized weight (summing to 1), as written.

    ``name`` is the blend as written without spaces (weights as given), the name a session
    reports; ``key`` identifies the mix whatever the order and scale of the weights.
    """

    name: str
    parts: tuple[tuple[str, float], ...]

    @property
    def voices(self) -> tuple[str, ...]:
        return tuple(voice for voice, _ in self.parts)

    @property
    def key(self) -> tuple[tuple[str, float], ...]:
        return tuple(sorted(self.parts))


def parse_blend(text: str) -> Blend:
    """Parse ``text`` as a blend (a single voice is a blend of one); VoiceBlendError if not."""
    if not text.strip():
        raise VoiceBlendError("empty voice name")
    pieces = text.split("+")
    written: list[str] = []
    weighted: list[tuple[str, float]] = []
    for piece in pieces:
        if not piece.strip():
            raise VoiceBlendError(f"empty part in voice blend {text!r}; write a(2)+b(1)")
        match = _PART.fullmatch(piece)
        if match is None:
            raise VoiceBlendError(
                f"cannot read {piece.strip()!r} in voice blend {text!r}; a part is a voice name, "
                "optionally with a weight in parentheses: jf_alpha(2)+jm_kumo(1)"
            )
        voice, weight_text = match.group(1), match.group(2)
        weight = 1.0
        if weight_text is not None:
            if not _WEIGHT.fullmatch(weight_text):
                raise VoiceBlendError(
                    f"weight {weight_text!r} of {voice!r} in {text!r} is not a positive number"
                )
            weight = float(weight_text)
            if weight <= 0:
                raise VoiceBlendError(f"weight of {voice!r} in {text!r} must be more than 0")
        if voice in (seen for seen, _ in weighted):
            raise VoiceBlendError(f"voice {voice!r} appears twice in {text!r}")
        weighted.append((voice, weight))
        written.append(voice if weight_text is None else f"{voice}({weight_text})")
    total = sum(weight for _, weight in weighted)
    parts = tuple((voice, weight / total) for voice, weight in weighted)
    name = parts[0][0] if len(parts) == 1 else "+".join(written)
    return Blend(name, parts)


def resolve_blend(text: str, known: Collection[str]) -> Blend:
    """``text`` as a blend of ``known`` voices: a known name as it is (even with ``+`` or
    parentheses in it), else a parsed blend whose every voice is known."""
    if text in known:
        return Blend(text, ((text, 1.0),))
    blend = parse_blend(text)
    for voice in blend.voices:
        if voice not in known:
            where = f" in {text!r}" if len(blend.parts) > 1 else ""
            raise VoiceBlendError(f"unknown voice {voice!r}{where}")
    return blend
