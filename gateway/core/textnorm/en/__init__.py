"""English: the rules in precedence order, and the factory the registry calls."""

from __future__ import annotations

from typing import Final

from gateway.core.textnorm.en import calendar, lexical, markup, numeric, quantities
from gateway.core.textnorm.en.common import Context
from gateway.core.textnorm.en.data import ACRONYMS, INITIALISMS
from gateway.core.textnorm.engine import Normalizer, Rule, RuleNormalizer
from gateway.core.textnorm.numbers import InflectWords, Num2Words, NumberWords
from gateway.core.textnorm.settings import DateOrder, Settings

__all__ = ["RULES", "english"]

# Precedence: earlier rules claim characters first. Code and addresses before anything that
# could read their insides; dates and times before the fractions, ranges and numbers they are
# made of; abbreviations and capitals last (they never contain digits).
RULES: Final[tuple[Rule[Context], ...]] = (
    Rule("code_blocks", markup.code_blocks),
    Rule("inline_code", markup.inline_code),
    Rule("links", markup.links),
    Rule("emails", markup.emails),
    Rule("urls", markup.urls),
    Rule("emoji", markup.emojis),
    Rule("markdown", markup.markdown),
    Rule("money", quantities.money),
    Rule("dates", calendar.dates),
    Rule("times", calendar.times),
    Rule("phones", numeric.phones),
    Rule("decades", numeric.decades),
    Rule("versions", numeric.versions),
    Rule("measures", quantities.measures),
    Rule("ranges", quantities.ranges),
    Rule("units", quantities.units),
    Rule("fractions", quantities.fractions),
    Rule("ordinals", numeric.ordinals),
    Rule("years", numeric.years),
    Rule("abbreviations", lexical.abbreviations),
    Rule("numbers", numeric.numbers),
    Rule("capitals", lexical.capitals),
    Rule("symbols", lexical.symbols),
)

_DMY_REGIONS: Final = frozenset({"gb", "uk", "au", "nz", "ie", "in", "za", "sg", "hk", "ng"})


def _region(language: str) -> str:
    parts = language.split("-")
    return parts[1] if len(parts) > 1 else ""


def english(language: str, settings: Settings) -> Normalizer:
    """The English normalizer for ``language`` ("en", "en-us", "en-gb"...)."""
    commonwealth = _region(language) in _DMY_REGIONS
    date_order: DateOrder = settings.date_order or ("dmy" if commonwealth else "mdy")
    and_word = commonwealth if settings.and_in_numbers is None else settings.and_in_numbers
    numbers: NumberWords = (
        InflectWords(and_word=and_word)
        if settings.speller == "inflect"
        else Num2Words(and_word=and_word)
    )
    context = Context(
        language=language,
        settings=settings,
        numbers=numbers,
        date_order=date_order,
        emoji=settings.emoji,
        code_blocks=settings.code_blocks,
        acronyms=(ACRONYMS - settings.initialisms) | settings.acronyms,
        initialisms=(INITIALISMS - settings.acronyms) | settings.initialisms,
        letter_joint="-" if settings.letter_style == "hyphen" else " ",
    )
    return RuleNormalizer(language, settings, RULES, context)
