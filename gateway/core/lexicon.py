"""The pronunciation lexicon: words or patterns read as a respelling or as phonemes (no I/O).

A lexicon is a list of :class:`LexiconEntry`, each matching a whole word (or a regular
expression) and saying how to read it: ``say`` (a respelling every engine reads), and/or
phonemes: ``ipa`` for Kokoro, ``espeak`` (espeak-ng's phoneme mnemonics) for espeak-ng and
Piper. An engine takes the phonemes in its alphabet where given, else it reads ``say`` (and an
entry with phonemes only in another alphabet is read as written).

Layers stack: a session's entries (``start.lexicon``) come before its API key's, which come
before the gateway's (config.toml ``[lexicon]``); where entries overlap, the earlier one wins,
and within a layer the order written. Lexicon entries win over every normalization rule.

Case: ``case = "auto"`` (the default) matches a word written in lower case in any case
("nguyen" matches "Nguyen" and "NGUYEN") and a word with capitals exactly ("US" does not match
"us"); ``"exact"`` and ``"ignore"`` force either. A pattern follows the same setting (auto:
exact). Offsets are code points; a match never spans a line break.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from gateway.core.textnorm.model import Phonemes, Replacement

__all__ = ["CASES", "LexiconEntry", "PronunciationLexicon", "parse_entries"]

CaseRule = Literal["auto", "exact", "ignore"]
CASES: Final = ("auto", "exact", "ignore")
MAX_ENTRIES: Final = 1000  # per layer
MAX_FIELD_CHARS: Final = 200
_FIELDS: Final = ("word", "pattern", "say", "ipa", "espeak", "case")


@dataclass(frozen=True, slots=True)
class LexiconEntry:
    """One entry: ``word`` (a whole word) or ``pattern`` (a regular expression), read as
    ``say`` and/or the phonemes ``ipa`` / ``espeak``. A pattern's ``say`` may use ``\\1``-style
    group references."""

    word: str | None = None
    pattern: str | None = None
    say: str | None = None
    ipa: str | None = None
    espeak: str | None = None
    case: CaseRule = "auto"

    def __post_init__(self) -> None:
        if (self.word is None) == (self.pattern is None):
            raise ValueError("needs exactly one of 'word' and 'pattern'")
        if self.say is None and self.ipa is None and self.espeak is None:
            raise ValueError("needs at least one of 'say', 'ipa' and 'espeak'")
        if self.case not in CASES:
            raise ValueError(f"'case' must be one of {', '.join(CASES)}, got {self.case!r}")
        for name in _FIELDS[:-1]:
            value = getattr(self, name)
            if value is not None and (not value.strip() or len(value) > MAX_FIELD_CHARS):
                raise ValueError(f"{name!r} must be 1 to {MAX_FIELD_CHARS} characters")
        if self.pattern is not None:
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"'pattern' is not a regular expression: {exc}") from None
            if compiled.match(""):
                raise ValueError("'pattern' must not match the empty text")

    def compiled(self) -> re.Pattern[str]:
        """The entry as a regular expression on the text (a word: whole words only)."""
        if self.word is not None:
            source = rf"(?<![\w]){re.escape(self.word)}(?![\w])"
            written = self.word
        else:
            assert self.pattern is not None
            source, written = self.pattern, ""
        ignore = self.case == "ignore" or (self.case == "auto" and written.islower())
        return re.compile(source, re.IGNORECASE if ignore else 0)


class PronunciationLexicon:
    """Entries in precedence order (earlier wins); implements the normalizer's lexicon hook."""

    def __init__(self, entries: Iterable[LexiconEntry] = ()) -> None:
        self.entries = tuple(entries)
        self._compiled = [(entry, entry.compiled()) for entry in self.entries]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def then(self, later: PronunciationLexicon) -> PronunciationLexicon:
        """This lexicon's entries first, then ``later``'s (a lower layer)."""
        if not later:
            return self
        return PronunciationLexicon((*self.entries, *later.entries))

    def find(self, text: str) -> Iterator[Replacement]:
        for entry, pattern in self._compiled:
            for match in pattern.finditer(text):
                if match.end() == match.start() or "\n" in match.group():
                    continue
                say = match.expand(entry.say) if entry.pattern and entry.say else entry.say
                phonemes = Phonemes(entry.ipa, entry.espeak) if entry.ipa or entry.espeak else None
                yield Replacement(match.start(), match.end(), say or match.group(), "lexicon",
                                  phonemes)  # fmt: skip


def parse_entries(where: str, value: Any) -> tuple[LexiconEntry, ...]:
    """Lexicon entries from their JSON/msgpack/TOML form: a list of maps with the keys
    ``word`` or ``pattern``, and ``say``, ``ipa``, ``espeak``, ``case``. Raises ValueError
    naming the bad entry and field as ``<where>[<index>].<field>``."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ValueError(f"{where} must be a list of entries, got {type(value).__name__}")
    if len(value) > MAX_ENTRIES:
        raise ValueError(f"{where} has {len(value)} entries; at most {MAX_ENTRIES} are allowed")
    return tuple(_entry(f"{where}[{index}]", item) for index, item in enumerate(value))


def _entry(where: str, item: Any) -> LexiconEntry:
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be a map, got {type(item).__name__}")
    unknown = sorted(str(key) for key in item if key not in _FIELDS)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
            + ", ".join(_FIELDS)
        )
    for key, field_value in item.items():
        if field_value is not None and not isinstance(field_value, str):
            raise ValueError(f"{where}.{key} must be a string, got {type(field_value).__name__}")
    try:
        return LexiconEntry(**{key: item[key] for key in _FIELDS if item.get(key) is not None})
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
