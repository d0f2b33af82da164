"""The suite's figures as one PNG: time to first audio per backend, and the concurrency sweeps.

matplotlib (the ``bench`` extra) draws on a :class:`~matplotlib.figure.Figure` without pyplot,
so no GUI backend or global state is involved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_suite"]

# Policy -> colour, marker, line style (fifo dashed, so equal results stay visible).
_POLICY_STYLE = {"deadline": ("tab:blue", "o", "-"), "fifo": ("tab:orange", "s", "--")}


def _ttfa(axes: Axes, runs: Mapping[str, Sequence[float]], targets: Mapping[str, float]) -> None:
    names = [name for name, values in runs.items() if values]
    if not names:
        axes.set_axis_off()
        return
    axes.boxplot([runs[name] for name in names], whis=(5, 95), showfliers=True)
    axes.set_xticks(range(1, len(names) + 1), names)
    for position, name in enumerate(names, start=1):
        if name in targets:
            axes.hlines(
                targets[name], position - 0.4, position + 0.4, colors="tab:red", linestyles="dashed"
            )
    axes.set_yscale("log")
    axes.set_ylabel("time to first audio, ms (log)")
    axes.set_title(
        "Time to first audio per backend\n(box: quartiles, whiskers: p5-p95, red: target)"
    )


def _sweep(axes: Axes, name: str, sweep: Mapping[str, Any]) -> None:
    top = max(sweep["grid"])
    axes.plot([0, top], [0, top], color="grey", linewidth=0.8, label="all sessions")
    for policy, points in sweep["points"].items():
        loads = sorted(int(n) for n in points)
        color, marker, style = _POLICY_STYLE.get(policy, ("black", "x", ":"))
        clean = [points[str(n)]["clean"] for n in loads]
        axes.plot(
            loads,
            clean,
            color=color,
            marker=marker,
            linestyle=style,
            label=policy,
            markerfacecolor="none" if policy == "fifo" else color,
        )
    bound = sweep["compute_bound"]
    if math.isfinite(bound):
        axes.axvline(bound, color="tab:red", linestyle="dashed", label=f"compute bound {bound:.1f}")
    axes.set_xlabel("sessions started (N)")
    axes.set_ylabel("sessions without underrun")
    axes.set_title(f"Concurrency sweep: {name}")
    axes.legend(fontsize="small")


def plot_suite(
    path: Path,
    ttfa_runs: Mapping[str, Sequence[float]],
    sweeps: Mapping[str, Mapping[str, Any]],
    *,
    targets: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """Write the PNG: first-audio distributions, then one panel per swept backend."""
    panels = 1 + len(sweeps)
    figure = Figure(figsize=(5.5 * panels, 4.8), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    _ttfa(axes[0], ttfa_runs, targets or {})
    for panel, (name, sweep) in zip(axes[1:], sweeps.items(), strict=True):
        _sweep(panel, name, sweep)
    if title:
        figure.suptitle(title, fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
