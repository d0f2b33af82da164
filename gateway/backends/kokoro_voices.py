"""The voices of a Kokoro backend: its style packs, weighted blends of them, and what a voice's
name says of it (language and gender), in one place for both Kokoro backends (ONNX, PyTorch).

A voice name is one of the packs, or a blend
(:mod:`gateway.core.voice_blend`: ``jf_alpha(2)+jm_kumo(1)``) whose pack is the weighted mean
of its voices' packs, row by row: every row (the style for a given number of phonemes) is the
same convex combination. Blended packs are computed once and kept in a small LRU cache.

Not thread-safe: the backends call it on the event loop only (the pack is handed to the worker
thread, which never changes it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Final

import numpy as np
from numpy.typing import NDArray

from gateway.backends.base import UnknownVoiceError, Voice
from gateway.core.voice_blend import Blend, VoiceBlendError, resolve_blend

__all__ = ["BLEND_CACHE_SIZE", "LANGUAGES", "KokoroVoices", "voice_gender", "voice_language"]

BLEND_CACHE_SIZE: Final = 16  # blended packs kept (a Kokoro pack is about 0.5 MB)
# The languages a Kokoro backend reads text in (its espeak-ng front end's codes).
LANGUAGES: Final = ("en-us", "en-gb", "es", "fr-fr", "hi", "it", "pt-br")
# A Kokoro voice name starts with its language and gender: af_heart is American English, female.
_LANGUAGE_OF_PREFIX: Final = {
    "a": "en-us",
    "b": "en-gb",
    "e": "es",
    "f": "fr-fr",
    "h": "hi",
    "i": "it",
    "j": "ja",
    "p": "pt-br",
    "z": "zh",
}
_GENDER_OF_PREFIX: Final = {"f": "female", "m": "male"}


def voice_language(name: str) -> str | None:
    """The language a Kokoro voice was made for, from its name (None: unknown)."""
    return _LANGUAGE_OF_PREFIX.get(name[:1])


def voice_gender(name: str) -> str | None:
    """The gender of a Kokoro voice, from its name (None: unknown)."""
    return _GENDER_OF_PREFIX.get(name[1:2])


Pack = NDArray[np.float32]


class KokoroVoices:
    """Named style packs (all of one shape) and their blends."""

    def __init__(
        self, backend: str, packs: Mapping[str, Pack], *, cache_size: int = BLEND_CACHE_SIZE
    ) -> None:
        self._backend = backend
        self._packs = dict(packs)
        self._cache: OrderedDict[tuple[tuple[str, float], ...], Pack] = OrderedDict()
        self._cache_size = cache_size
        self.blends_computed = 0  # cache misses, for tests

    def names(self) -> list[str]:
        """The voices of the packs, sorted."""
        return sorted(self._packs)

    def listed(self) -> list[Voice]:
        """The voices of the packs, as a backend lists them."""
        return [Voice(n, n, voice_language(n), voice_gender(n)) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._packs

    def resolve(self, name: str) -> str:
        """The name a session uses for voice ``name``: a pack's name, or the blend as written
        without spaces. UnknownVoiceError names the bad part and the voices there are."""
        return self._blend(name).name

    def parts(self, name: str) -> list[tuple[str, float]]:
        """The voices of a voice or blend with their weights (summing to 1)."""
        return list(self._blend(name).parts)

    def packs(self) -> dict[str, Pack]:
        """Every voice's style pack, by name."""
        return dict(self._packs)

    def pack(self, name: str) -> Pack:
        """The style pack of a voice or blend (blends from the cache when they were used)."""
        blend = self._blend(name)
        if len(blend.parts) == 1:
            return self._packs[blend.parts[0][0]]
        key = blend.key
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        mixed = self._mix(blend)
        self._cache[key] = mixed
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return mixed

    def _blend(self, name: str) -> Blend:
        try:
            return resolve_blend(name, self._packs)
        except VoiceBlendError as error:
            raise UnknownVoiceError(
                f"{error} for backend {self._backend!r}; voices: {', '.join(self.names())} "
                "(or a blend of them, e.g. a(2)+b(1))"
            ) from None

    def _mix(self, blend: Blend) -> Pack:
        shapes = {self._packs[voice].shape for voice in blend.voices}
        if len(shapes) > 1:
            raise UnknownVoiceError(
                f"cannot blend {blend.name!r}: its voices' style packs differ in shape "
                f"({', '.join(f'{v} {self._packs[v].shape}' for v in blend.voices)})"
            )
        mixed = np.zeros(next(iter(shapes)), dtype=np.float64)
        for voice, weight in blend.parts:
            mixed += weight * self._packs[voice].astype(np.float64)
        self.blends_computed += 1
        return mixed.astype(np.float32)
