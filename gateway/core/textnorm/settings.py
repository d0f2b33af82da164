"""Normalization settings (immutable and hashable, so normalizers can be cached per setting)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

__all__ = ["CodeBlocks", "DateOrder", "EmojiMode", "LetterStyle", "Settings", "Speller"]

DateOrder = Literal["mdy", "dmy"]
EmojiMode = Literal["drop", "name"]
CodeBlocks = Literal["skip", "announce"]
LetterStyle = Literal["hyphen", "space"]
Speller = Literal["num2words", "inflect"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How to read text. ``None`` means "the language's default".

    * ``date_order``: how ambiguous numeric dates (``12/05/2024``) are read, and the order dates
      are spoken in; default ``"dmy"`` for en-GB/AU/NZ/IE/IN/ZA, ``"mdy"`` otherwise.
    * ``emoji``: ``"drop"`` (not read) or ``"name"`` (read by its CLDR name: "thumbs up").
    * ``code_blocks``: fenced code blocks ``"skip"``-ped or ``"announce"``-d ("Python code
      block").
    * ``acronyms`` / ``initialisms``: added to the language's lists of capitalized words read
      as words (NASA) and read letter by letter (FBI); an entry in one removes it from the
      other.
    * ``letter_style``: how letters are joined when spelled: ``"hyphen"`` ("F-B-I"; espeak-ng
      reads hyphen-joined capitals as letter names, including A) or ``"space"`` ("F B I").
    * ``and_in_numbers``: "one hundred and one" (default for en-GB and other Commonwealth
      English) or "one hundred one".
    * ``speller``: the number-to-words library (``"num2words"``, LGPL, or ``"inflect"``, MIT).
    """

    date_order: DateOrder | None = None
    emoji: EmojiMode = "drop"
    code_blocks: CodeBlocks = "announce"
    acronyms: frozenset[str] = field(default_factory=frozenset)
    initialisms: frozenset[str] = field(default_factory=frozenset)
    letter_style: LetterStyle = "hyphen"
    and_in_numbers: bool | None = None
    speller: Speller = "num2words"

    def __post_init__(self) -> None:
        for name, kind, optional in (
            ("date_order", DateOrder, True),
            ("emoji", EmojiMode, False),
            ("code_blocks", CodeBlocks, False),
            ("letter_style", LetterStyle, False),
            ("speller", Speller, False),
        ):
            value = getattr(self, name)
            if not (value in get_args(kind) or (optional and value is None)):
                raise ValueError(f"{name}: must be one of {get_args(kind)}, got {value!r}")
        for name in ("acronyms", "initialisms"):
            listed: Iterable[str] = getattr(self, name)
            if isinstance(listed, str) or not all(isinstance(word, str) for word in listed):
                raise ValueError(f"{name}: must be a collection of words, got {listed!r}")
            object.__setattr__(self, name, frozenset(listed))  # a set or list given: frozen
        if self.and_in_numbers is not None and not isinstance(self.and_in_numbers, bool):
            raise ValueError(f"and_in_numbers: must be a bool or None, got {self.and_in_numbers!r}")
