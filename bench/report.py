"""Figures into tables and files: the statistics, markdown and JSON the benchmarks share.

Pure functions (the writer touches only the directory it is given), tested in
tests/test_bench_suite.py.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Target",
    "fmt",
    "markdown_table",
    "percentile",
    "summary",
    "write_results",
]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100, linear interpolation); NaN for no values."""
    return float(np.percentile(values, q)) if values else float("nan")


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, p95, min and max of ``values`` (all NaN for none)."""
    if not values:
        nan = float("nan")
        return {"median": nan, "p95": nan, "min": nan, "max": nan, "n": 0}
    return {
        "median": statistics.median(values),
        "p95": percentile(values, 95),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    """A number for a table: rounded, with its unit; ``-`` for missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    text = f"{value:.{digits}f}"
    return f"{text} {unit}" if unit else text


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; cells are written with ``str`` (``|`` escaped)."""

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    body = []
    for number, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"row {number} has {len(row)} cells, not {len(headers)}: {row}")
        body.append(line(row))
    return "\n".join([line(headers), "|" + "---|" * len(headers), *body])


@dataclass(frozen=True, slots=True)
class Target:
    """A target of the issue: a measured ``value`` against ``limit`` with ``op``
    (``<=``, ``>=``, or ``>`` for "strictly better")."""

    name: str
    value: float | None
    op: str
    limit: float

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">=", ">"):
            raise ValueError(f"op: must be <=, >= or >, got {self.op!r}")

    @property
    def met(self) -> bool | None:
        """Whether the value meets the limit; None when it was not measured."""
        if self.value is None or math.isnan(self.value):
            return None
        if self.op == "<=":
            return self.value <= self.limit
        return self.value >= self.limit if self.op == ">=" else self.value > self.limit

    def as_dict(self) -> dict[str, Any]:
        """The target as JSON."""
        return {
            "name": self.name,
            "value": self.value,
            "op": self.op,
            "limit": self.limit,
            "met": self.met,
        }


def _jsonable(value: Any) -> Any:
    """NaN and infinity are not JSON: write them as null."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def write_results(out: Path, name: str, result: dict[str, Any], markdown: str) -> list[Path]:
    """Write ``<name>.json`` (strict JSON: NaN as null) and ``<name>.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(_jsonable(result), indent=2, allow_nan=False) + "\n")
    md_path.write_text(markdown.rstrip("\n") + "\n")
    return [json_path, md_path]
