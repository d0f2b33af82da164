"""Normalizers per language: a registry keyed by BCP-47-ish tags ("en", "en-US", "en_gb").

A tag is looked up as given, then with its last subtag dropped, until a registered one is found
("en-gb" -> "en-gb"? -> "en"); a language with no normalizer gets the identity one (only the
lexicon applies). Factories get the full tag, so one factory serves every dialect.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from gateway.core.textnorm.engine import Normalizer, Rule, RuleNormalizer
from gateway.core.textnorm.lexicon import Lexicon
from gateway.core.textnorm.model import Normalized
from gateway.core.textnorm.settings import Settings

__all__ = [
    "NormalizerFactory",
    "get_normalizer",
    "normalize",
    "register_language",
    "registered_languages",
    "unregister_language",
]

NormalizerFactory = Callable[[str, Settings], Normalizer]

_FACTORIES: dict[str, NormalizerFactory] = {}
_LOCK = threading.Lock()


def canonical_tag(language: str) -> str:
    return language.strip().replace("_", "-").lower()


def register_language(tag: str, factory: NormalizerFactory) -> None:
    """Serve ``tag`` (and its sub-tags, unless registered themselves) with ``factory``."""
    with _LOCK:
        _FACTORIES[canonical_tag(tag)] = factory
    _cached.cache_clear()


def unregister_language(tag: str) -> None:
    """Stop serving ``tag`` (its sub-tags fall back to a shorter tag, or the identity)."""
    with _LOCK:
        _FACTORIES.pop(canonical_tag(tag), None)
    _cached.cache_clear()


def registered_languages() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def _identity(tag: str, settings: Settings) -> Normalizer:
    rules: tuple[Rule[None], ...] = ()
    return RuleNormalizer(tag, settings, rules, None)


@functools.lru_cache(maxsize=64)
def _cached(tag: str, settings: Settings) -> Normalizer:
    parts = tag.split("-")
    while parts:
        factory = _FACTORIES.get("-".join(parts))
        if factory is not None:
            return factory(tag, settings)
        parts.pop()
    return _identity(tag, settings)


def get_normalizer(language: str = "en", settings: Settings | None = None) -> Normalizer:
    """The normalizer for ``language`` with ``settings`` (built once per pair, then shared)."""
    return _cached(canonical_tag(language), settings or Settings())


def normalize(
    text: str,
    language: str = "en",
    settings: Settings | None = None,
    *,
    lexicon: Lexicon | None = None,
) -> Normalized:
    """Normalize one segment: see :class:`~gateway.core.textnorm.model.Normalized`."""
    return get_normalizer(language, settings).normalize(text, lexicon=lexicon)
