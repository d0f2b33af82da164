"""The rule engine: rules propose replacements, the first to claim characters wins.

A :class:`Rule` scans the segment and yields *groups*: replacements that stand or fall together
("5 km" -> "5": "five", "km": "kilometers"). Rules run in precedence order (the lexicon first);
a group is accepted only if none of its characters are claimed yet, and then claims exactly its
replacements' characters (not the gaps between them, so a Markdown link's text can still be
normalized). A replacement whose reading equals its source text claims without changing
anything (how "NASA" is protected from the letter-by-letter rule).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from gateway.core.textnorm.lexicon import Lexicon
from gateway.core.textnorm.model import Normalized, Replacement, assemble
from gateway.core.textnorm.settings import Settings

__all__ = ["Normalizer", "Rule", "RuleNormalizer", "apply_rules"]

C = TypeVar("C")


class Normalizer(Protocol):
    """A language's normalizer, bound to its settings. Pure: the result depends only on
    ``text``, the settings and the lexicon (no state across segments)."""

    @property
    def language(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    def normalize(self, text: str, *, lexicon: Lexicon | None = None) -> Normalized: ...


@dataclass(frozen=True, slots=True)
class Rule(Generic[C]):
    """``find(text, context)`` yields groups of replacements for ``text``."""

    name: str
    find: Callable[[str, C], Iterable[Sequence[Replacement]]]


def apply_rules(
    text: str, rules: Sequence[Rule[C]], context: C, lexicon: Lexicon | None = None
) -> Normalized:
    """Run ``lexicon`` then ``rules`` over ``text``; see the module docstring."""
    claimed = bytearray(len(text))
    accepted: list[Replacement] = []

    def take(group: Sequence[Replacement]) -> None:
        if not group or any(
            rep.end > len(text) or any(claimed[rep.start : rep.end]) for rep in group
        ):
            return
        for a, b in itertools.pairwise(group):
            if b.start < a.end:
                return  # overlapping within the group: a rule bug, never half-applied
        for rep in group:
            claimed[rep.start : rep.end] = b"\x01" * (rep.end - rep.start)
        accepted.extend(group)

    if lexicon is not None:
        for rep in lexicon.find(text):
            take((rep,))
    for rule in rules:
        for group in rule.find(text, context):
            take(sorted(group, key=lambda rep: rep.start))
    changes = sorted(
        (rep for rep in accepted if rep.spoken != text[rep.start : rep.end] or rep.phonemes),
        key=lambda rep: rep.start,
    )
    return assemble(text, changes)


class RuleNormalizer(Generic[C]):
    """A :class:`Normalizer` made of rules and the context they share."""

    def __init__(
        self, language: str, settings: Settings, rules: Sequence[Rule[C]], context: C
    ) -> None:
        self._language = language
        self._settings = settings
        self._rules = tuple(rules)
        self._context = context

    @property
    def language(self) -> str:
        return self._language

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def rule_names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self._rules)

    def normalize(self, text: str, *, lexicon: Lexicon | None = None) -> Normalized:
        return apply_rules(text, self._rules, self._context, lexicon)
