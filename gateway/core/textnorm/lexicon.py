"""The hook for the lexicon layer: entries that win over every normalization rule.

A :class:`Lexicon` proposes :class:`~gateway.core.textnorm.model.Replacement` s for a segment;
the normalizer accepts them first, so no rule touches the characters they cover. A replacement
may carry :class:`~gateway.core.textnorm.model.Phonemes` for engines that take them.
:class:`gateway.core.lexicon.PronunciationLexicon` is the gateway's implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from gateway.core.textnorm.model import Replacement

__all__ = ["Lexicon"]


class Lexicon(Protocol):
    """Replacements for ``text`` that take precedence over normalization (they may overlap
    each other: the first one proposed wins)."""

    def find(self, text: str) -> Iterable[Replacement]: ...
