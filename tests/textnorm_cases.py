"""Table-driven cases and the checks every normalization must pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.core.textnorm import Normalized, Settings, normalize, word_readings


@dataclass(frozen=True)
class Case:
    """``text`` reads as ``spoken`` (whitespace runs collapsed).

    ``pieces``: source substring -> the reading of the replacement covering exactly it.
    ``words``: source word (as :func:`textnorm.word_readings` groups it) -> its ``spoken``
    (``None``: read as written).
    """

    text: str
    spoken: str
    pieces: Mapping[str, str] = field(default_factory=dict)
    words: Mapping[str, str | None] = field(default_factory=dict)
    language: str = "en"
    settings: Settings = field(default_factory=Settings)


def case(
    text: str,
    spoken: str,
    pieces: Mapping[str, str] | None = None,
    *,
    words: Mapping[str, str | None] | None = None,
    language: str = "en",
    id: str | None = None,
    **settings: Any,
) -> Any:
    """A ``pytest.param`` of a :class:`Case`, with ``Settings(**settings)``."""
    return pytest.param(
        Case(text, spoken, pieces or {}, words or {}, language, Settings(**settings)),
        id=id or text[:60],
    )


def collapse(text: str) -> str:
    return " ".join(text.split())


def check_offsets(result: Normalized) -> None:
    """The spans cover source and output in order; verbatim spans are the source itself; every
    output word maps into the source, in order; word readings are consistent."""
    source, text = result.source, result.text
    src = out = 0
    for span in result.spans:
        assert span.src_start == src, (span, src)
        assert span.out_start == out, (span, out)
        assert span.src_end >= span.src_start
        assert span.out_end >= span.out_start
        if span.verbatim:
            assert source[span.src_start : span.src_end] == text[span.out_start : span.out_end]
            assert span.src_end > span.src_start
        else:
            assert span.src_end > span.src_start, span
        src, out = span.src_end, span.out_end
    assert src == len(source)
    assert out == len(text)
    assert "".join(text[s.out_start : s.out_end] for s in result.spans) == text
    assert "".join(source[s.src_start : s.src_end] for s in result.spans) == source

    previous = 0
    for word in result.output_words():
        assert 0 <= word.src_start <= word.src_end <= len(source)
        assert word.src_start >= previous, word
        previous = word.src_start
        assert text[word.out_start : word.out_end] == word.text

    readings = word_readings(result)
    end = 0
    assigned: list[str] = []
    for reading in readings:
        assert reading.start >= end, reading
        assert reading.end > reading.start
        assert source[reading.start : reading.end] == reading.text
        end = reading.end
        assigned.extend(reading.words)
        if reading.spoken is None:
            assert reading.words, reading
    tokens = [w.text for w in result.output_words()]
    # Every output word that says something belongs to one reading, in order.
    sounding = [t for t in tokens if any(c.isalnum() for c in t)]
    assert [t for t in assigned if any(c.isalnum() for c in t)] == sounding


def run_case(item: Case) -> Normalized:
    result = normalize(item.text, item.language, item.settings)
    check_offsets(result)
    assert collapse(result.text) == collapse(item.spoken), result.text
    replacements = result.replacements()
    for original, reading in item.pieces.items():
        found = [rep.spoken for rep in replacements if item.text[rep.start : rep.end] == original]
        assert found, f"no replacement covers exactly {original!r}: {replacements}"
        assert reading in found, f"{original!r} read as {found}, expected {reading!r}"
    if item.words:
        readings = {r.text: r.spoken for r in word_readings(result)}
        for word, spoken in item.words.items():
            assert word in readings, f"{word!r} not a word: {list(readings)}"
            assert readings[word] == spoken, f"{word!r} read {readings[word]!r}"
    return result
