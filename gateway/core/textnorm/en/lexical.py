"""Rules for words: abbreviations and titles, capitalized words (letters or a word), Roman
numerals after names, and symbols in running text."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final

from gateway.core.textnorm.en.common import (
    Context,
    abbreviation_dot,
    at_end,
    join_alternatives,
    piece,
    word_after,
    word_before,
    words,
)
from gateway.core.textnorm.en.data import (
    CAPITAL_ABBREVIATIONS,
    CAPS_STOPWORDS,
    LATIN,
    MONTH_ABBREVIATIONS,
    MONTHS,
    NUMBER_ABBREVIATIONS,
    ROMAN_CARDINAL_CUES,
    SPECIAL_CAPITALS,
    TERMINAL_CAPITALS,
    TERMINAL_LATIN,
    TITLES,
    TITLES_DOT_OPTIONAL,
    WEEKDAY_ABBREVIATIONS,
)
from gateway.core.textnorm.model import Replacement

Group = Sequence[Replacement]

# -- abbreviations -------------------------------------------------------------------------------

_LATIN: Final = re.compile(
    rf"(?<![\w.])(?:{join_alternatives(list(LATIN))})(?![\w])", re.IGNORECASE
)
_TITLE: Final = re.compile(rf"\b(?P<word>{join_alternatives(list(TITLES))})(?P<dot>\.)?(?=\s|$)")
_CAPITAL: Final = re.compile(
    rf"\b(?P<word>{join_alternatives(list(CAPITAL_ABBREVIATIONS))})(?P<dot>\.)(?=\s|$|[,;:)])"
)
_BEFORE_NUMBER: Final = re.compile(
    rf"\b(?P<word>{join_alternatives(list(NUMBER_ABBREVIATIONS))})(?P<dot>\.)(?=\s?[0-9])"
)
_WEEKDAY: Final = re.compile(
    rf"\b(?P<word>{join_alternatives(list(WEEKDAY_ABBREVIATIONS))})(?P<dot>\.)?"
    rf"(?=,?\s+(?:{join_alternatives([*MONTHS, *MONTH_ABBREVIATIONS])}|[0-9]))"
)
_DOTTED: Final = re.compile(
    r"(?<![\w.])(?P<letters>(?:[A-Za-z][a-z]?\.){1,}[A-Za-z][a-z]?)(?P<dot>\.)?(?![\w])"
)


def _is_capitalized(word: str) -> bool:
    return len(word) > 1 and word[0].isupper() and not word.isupper()


def _sentence_start(text: str, position: int) -> bool:
    before = text[:position].rstrip(" \t\"'“‘(")
    return not before or before[-1] in ".!?\n:"


def abbreviations(text: str, ctx: Context) -> Iterator[Group]:
    """Latin shorthands (e.g., etc.), titles (Dr., St. as Saint, Street or Drive), dotted
    initials (U.S.), and abbreviations before numbers (No. 5). A dot that may end the
    sentence is kept at the end of the segment; elsewhere it is dropped, so it is not read as a
    full stop."""
    for match in _LATIN.finditer(text):
        key = match.group().lower()
        reading = LATIN[key]
        if match.group()[0].isupper() and reading[0].islower():
            reading = reading[0].upper() + reading[1:]
        if key.endswith("."):
            end = match.end() - 1
            group = [Replacement(match.start(), end, reading, "abbreviation")]
            group.extend(
                abbreviation_dot(text, end, "abbreviation", terminal=key in TERMINAL_LATIN)
            )
        else:
            group = [Replacement(match.start(), match.end(), reading, "abbreviation")]
        yield group
    for match in _TITLE.finditer(text):
        word = match.group("word")
        if not match.group("dot") and word not in TITLES_DOT_OPTIONAL:
            continue
        before = word_before(text, match.start())
        after = word_after(text, match.end())
        next_capital = bool(after) and after[0].isupper()
        reading = TITLES[word]
        terminal = word in ("Jr", "Sr")
        if word in ("St", "Dr"):
            after_name = _is_capitalized(before) and not _sentence_start(text, match.start())
            if after_name and (not next_capital or at_end(text, match.end())):
                reading = "Street" if word == "St" else "Drive"
                terminal = True
            elif not next_capital and word == "St":
                reading = "Street"
                terminal = True
        elif not next_capital and word not in ("Jr", "Sr"):
            continue  # "Mr." with no name after it: leave it to the engine
        group = [piece(match, "word", reading, "abbreviation")]
        if match.group("dot"):
            group.extend(
                abbreviation_dot(text, match.start("dot"), "abbreviation", terminal=terminal)
            )
        yield group
    for match in _BEFORE_NUMBER.finditer(text):
        yield (
            piece(match, "word", NUMBER_ABBREVIATIONS[match.group("word")], "abbreviation"),
            piece(match, "dot", "", "abbreviation"),
        )
    for match in _WEEKDAY.finditer(text):
        group = [piece(match, "word", WEEKDAY_ABBREVIATIONS[match.group("word")], "abbreviation")]
        if match.group("dot"):
            group.append(piece(match, "dot", "", "abbreviation"))
        yield group
    for match in _CAPITAL.finditer(text):
        word = match.group("word")
        yield (
            piece(match, "word", CAPITAL_ABBREVIATIONS[word], "abbreviation"),
            *abbreviation_dot(
                text, match.start("dot"), "abbreviation", terminal=word in TERMINAL_CAPITALS
            ),
        )
    for match in _DOTTED.finditer(text):
        letters = match.group("letters")
        if len(letters.replace(".", "")) < 2 or letters.count(".") < 1:
            continue
        if not match.group("dot") and len(letters.replace(".", "")) < 3:
            continue  # "a.b" is more likely a name in code than initials
        group = [piece(match, "letters", ctx.spell(letters), "letters")]
        if match.group("dot"):
            group.extend(abbreviation_dot(text, match.start("dot"), "letters", terminal=True))
        yield group


# -- capitalized words ---------------------------------------------------------------------------

_SPECIAL: Final = re.compile(
    rf"(?<![\w&/])(?:{join_alternatives(list(SPECIAL_CAPITALS))})(?![\w&/])"
)
_MIXED: Final = {
    "PhD": "P-H-D",
    "IoT": "I-O-T",
    "iOS": "eye O-S",
    "macOS": "mac O-S",
    "SaaS": "sass",
    "PyPI": "pie P-I",
    "npm": "N-P-M",
    "JPEG": "jay-peg",
    "GUI": "gooey",
    "ASCII": "askee",
    "PNG": "P-N-G",
}
_MIXED_RE: Final = re.compile(rf"(?<![\w])(?:{join_alternatives(list(_MIXED))})(?P<s>s)?(?![\w])")
_CAPS: Final = re.compile(
    r"(?<![\w'’.&/-])(?P<core>[A-Z]{2,6})(?P<suffix>s|['’]s)?(?=$|[^\w'’]|[0-9]|['’][^\w])"
)
_ROMAN: Final = re.compile(r"^M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})$")
_ROMAN_VALUES: Final = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_VOWELS: Final = frozenset("AEIOU")
_ONSETS: Final = words(
    """BL BR CH CL CR DR FL FR GL GR PL PR SC SK SL SM SN SP ST SW TR TH TW WH WR SH PH QU SCH
    SCR SPR STR THR"""
)
_CODAS: Final = words(
    """CH CK CT FT LD LF LK LM LP LT MP ND NG NK NT PT RB RD RF RG RK RL RM RN RP RS RT SH SK
    SP ST TH"""
)


def roman_value(numeral: str) -> int | None:
    if not numeral or not _ROMAN.match(numeral):
        return None
    total = 0
    for char, following in zip(numeral, [*numeral[1:], ""], strict=True):
        value = _ROMAN_VALUES[char]
        total += -value if following and _ROMAN_VALUES[following] > value else value
    return total


def pronounceable(word: str) -> bool:
    """Whether capitals could be read as an English word (NASA, UNIX, END) rather than spelled
    (HTTP, CSV): consonant-vowel-consonant for three letters; for more, a vowel, a consonant
    onset and coda English allows, no long clusters."""
    word = word.upper()
    if len(word) == 3:
        if word[0] in _VOWELS:  # END, ACT, ASK (not ABC, ATM)
            return word[1] not in _VOWELS and word[1:] in _CODAS
        return word[1] in _VOWELS and word[2] not in _VOWELS and word[2] not in "HJQV"
    if len(word) < 4 or not any(char in _VOWELS for char in word):
        return False
    runs = re.findall(r"[^AEIOUY]+|[AEIOUY]+", word)
    for index, run in enumerate(runs):
        vowels = run[0] in "AEIOUY"
        if vowels:
            if len(run) > 2:
                return False
            continue
        first, last = index == 0, index == len(runs) - 1
        if first and len(run) > 1 and run not in _ONSETS:
            return False
        if last and len(run) > 1 and run not in _CODAS:
            return False
        if not first and not last and len(run) > 2:
            return False
    return True


def _shouting(text: str) -> bool:
    if sum(char.isupper() for char in text) < 8:
        return False
    letters = [char for char in text if char.isalpha()]
    words = re.findall(r"[A-Za-z]{2,}", text)
    upper = [word for word in words if word.isupper()]
    return (
        len(upper) >= 4
        and len(upper) >= 0.6 * len(words)
        and sum(char.isupper() for char in letters) >= 0.6 * len(letters)
    )


def capitals(text: str, ctx: Context) -> Iterator[Group]:
    """Capitalized words: known acronyms are left as words (claimed, so nothing spells them),
    known initialisms and unknown short or unpronounceable ones are spelled ("F-B-I"); Roman
    numerals after a cue ("Part IV") or a name ("Henry VIII") are read as numbers. In shouted
    text, unknown capitalized words are left alone."""
    for match in _SPECIAL.finditer(text):
        yield (Replacement(match.start(), match.end(), SPECIAL_CAPITALS[match.group()], "letters"),)
    for match in _MIXED_RE.finditer(text):
        word = match.group().removesuffix("s") if match.group("s") else match.group()
        spoken = _MIXED[word] + ("'s" if match.group("s") else "")
        yield (Replacement(match.start(), match.end(), spoken, "letters"),)
    shouting = _shouting(text)
    for match in _CAPS.finditer(text):
        core, suffix = match.group("core"), match.group("suffix") or ""
        if core.endswith("S") and not suffix and core[:-1] in ctx.initialisms:
            core, suffix = core[:-1], "s"  # "CPUS" written for "CPUs"
        roman = _roman_reading(text, match.start(), core, ctx)
        if roman and not suffix:
            yield (piece(match, "core", roman, "number"),)
            continue
        if core in ctx.acronyms:
            yield (Replacement(match.start(), match.end(), match.group(), "acronym"),)
            continue
        if shouting and core in CAPS_STOPWORDS:
            continue
        known = core in ctx.initialisms
        if not known and (shouting or core in CAPS_STOPWORDS or pronounceable(core)):
            if pronounceable(core) and not shouting:
                yield (Replacement(match.start(), match.end(), match.group(), "acronym"),)
            continue
        spoken = ctx.spell(core) + ("'s" if suffix else "")
        yield (Replacement(match.start(), match.end(), spoken, "letters"),)


_NOT_NAMES: Final = words(
    """the a an this that these those my our his her their its in on at of and or to for with
    by from as is was but if when while after before"""
)


def _roman_reading(text: str, start: int, core: str, ctx: Context) -> str | None:
    value = roman_value(core)
    if value is None:
        return None
    before = word_before(text, start)
    if before in ROMAN_CARDINAL_CUES or before == "Bowl":
        return ctx.numbers.cardinal(value)
    if (
        _is_capitalized(before)
        and before.lower() not in _NOT_NAMES
        and set(core) <= {"I", "V", "X"}
        and value <= 30
    ):
        return f"the {ctx.numbers.ordinal(value)}"
    return None


# -- symbols -------------------------------------------------------------------------------------

_SPACED_SYMBOL: Final = re.compile(r"(?:(?<=\s)|^)(?P<sym>[&+=×÷±≈≠≤≥<>@→~#§¶*])(?=\s|$)")
_PRODUCT: Final = re.compile(r"(?<=[0-9])[*×](?=[0-9])")
_PLUS_AFTER: Final = re.compile(r"(?<=[0-9])\+(?![\w+])")
_AMPERSAND: Final = re.compile(r"(?<=[A-Za-z])&(?=[A-Za-z])")
_SLASH: Final = re.compile(r"(?<=[a-z])/(?=[a-z])")
_MENTION: Final = re.compile(r"(?<![\w@])@(?=[A-Za-z_]\w*)")
_SYMBOLS: Final = {
    "&": "and",
    "+": "plus",
    "=": "equals",
    "×": "times",
    "÷": "divided by",
    "±": "plus or minus",
    "≈": "approximately",
    "≠": "is not equal to",
    "≤": "less than or equal to",
    "≥": "greater than or equal to",
    "<": "less than",
    ">": "greater than",
    "@": "at",
    "→": "to",
    "~": "about",
    "#": "number",
    "§": "section",
    "¶": "paragraph",
    "*": "times",
}


def symbols(text: str, ctx: Context) -> Iterator[Group]:
    """Symbols standing alone ("A & B", "2 + 2 = 4"), "R&D"-style ampersands, "and/or",
    "@name"."""
    del ctx
    for match in _SPACED_SYMBOL.finditer(text):
        yield (piece(match, "sym", _SYMBOLS[match.group("sym")], "symbol"),)
    for match in _PLUS_AFTER.finditer(text):  # "18+", "Python 3.10+"
        yield (Replacement(match.start(), match.end(), "plus", "symbol"),)
    for match in _PRODUCT.finditer(text):
        yield (Replacement(match.start(), match.end(), "times", "symbol"),)
    for match in _AMPERSAND.finditer(text):
        yield (Replacement(match.start(), match.end(), "and", "symbol"),)
    for match in _SLASH.finditer(text):
        yield (Replacement(match.start(), match.end(), "", "symbol"),)
    for match in _MENTION.finditer(text):
        yield (Replacement(match.start(), match.end(), "at", "symbol"),)
