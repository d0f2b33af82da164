"""Text normalization for speech that keeps offsets into the original text.

``normalize(text, "en-us")`` returns a :class:`Normalized`: the text to read aloud and the spans
mapping every piece of it back to the source characters. :func:`word_readings` gives, per
source word, the words spoken for it (a gateway word event's ``spoken``).
"""

from __future__ import annotations

from gateway.core.textnorm.en import english
from gateway.core.textnorm.engine import Normalizer, Rule, RuleNormalizer, apply_rules
from gateway.core.textnorm.lexicon import Lexicon
from gateway.core.textnorm.model import Normalized, OutputWord, Phonemes, Replacement, Span
from gateway.core.textnorm.registry import (
    get_normalizer,
    normalize,
    register_language,
    registered_languages,
    unregister_language,
)
from gateway.core.textnorm.settings import Settings
from gateway.core.textnorm.words import WordReading, source_words, word_readings

__all__ = [
    "Lexicon",
    "Normalized",
    "Normalizer",
    "OutputWord",
    "Phonemes",
    "Replacement",
    "Rule",
    "RuleNormalizer",
    "Settings",
    "Span",
    "WordReading",
    "apply_rules",
    "get_normalizer",
    "normalize",
    "register_language",
    "registered_languages",
    "source_words",
    "unregister_language",
    "word_readings",
]

register_language("en", english)
