"""Concurrency sweep: how many sessions play without underrun, next to the compute bound, with
earliest-deadline-first scheduling against first come, first served.

    python -m bench.suite --parts sweep [--quick]

Two gateway processes run side by side on loopback, one per scheduling policy (the backends'
``scheduling`` setting, set with ``TTSGW_BACKENDS__<NAME>__SCHEDULING``); each load is run on
one and then the other, so the two policies are compared under the same background load, as
ratios from one run.

A load of N sessions: N sessions of the same backend open with staggered starts and each
streams :data:`PASSAGE` (about 30 s of speech) as LLM tokens at 40 tokens/s. A simulated
listener per session (:class:`bench.listener.Listener`) starts playing at the session's first
frame and plays in real time; a frame later than its turn by more than the tolerance (50 ms, a
small jitter buffer) is an underrun. A session *plays without underrun* if it had none, no
error, and heard audio.

The compute bound is how many real-time sessions the model can serve at all: one listener
consumes one second of audio per second, which costs ``RTF`` seconds of the model (the
gateway's synthesis time over speech time, measured with one session alone on the same
gateway); the model has ``cores / model_cores`` such seconds per second (``model_cores``: the
cores one inference uses, times the inferences run at once). With the shipped config
(``threads = 0``: every core, ``max_concurrency = 1``) the bound is ``1 / RTF``. A second,
CPU-based bound divides the cores by the gateway process's CPU seconds per audio second with one
session (synthesis plus the gateway's own work).

Beside the listener's underruns, each load records the gateway's own count
(``done.metrics.underruns``: its model of the client's playback, without a tolerance).

Which loads (:func:`next_load`): every load costs the passage's length in wall time for each
policy, so the sweep searches instead of stepping N = 1, 2, 3, ... up to the bound (Piper's is
about 40). After N = 1 (which also measures the RTF) it starts at half the compute bound and
grows by half each time until some session underruns on either gateway (the knee), halves the
gap between the last load where every session of both played clean and the knee until it is
within 15 % of the knee, and runs at least two loads beyond the knee (25 % apart), never more
than 1.5 times the bound, and none once every session of both policies failed. Outcomes that
are not monotonic in N (noise on a shared machine) are reported as measured; the knee is the
smallest load at which a session was lost.

Saturation, and why starts are staggered: under light load both policies serve everyone in
time, and far beyond capacity both fail everyone; the order of service only matters when the
model is busy all the time *and* the waiting sessions differ in how urgently they need audio.
Sessions that start together stay in lockstep (equal buffers: earliest deadline first and first
come, first served pick the same order). Sessions that join one after another (0.3 s apart, as
users do; the spread is capped at a quarter of the passage so that all N overlap) hold
different buffers: a newcomer waits for its first sound with nothing buffered, while earlier
sessions may hold seconds, and right after their short first segment every session needs its
next one soon. That is where the deadline order should help. Saturation is therefore taken as
measured, not from the bound: the loads at which at least one session underran on either
gateway (the knee and beyond). Over those loads the sessions without underrun are summed per
policy and the ratio deadline / fifo reported (above 1: the scheduler kept more sessions
clean; 1 when both kept none), with the silence heard, fifo / deadline, as a second ratio. If
no load lost a session, the largest load is used (and the policies tie).

The verdict on the scheduler is the ratio of capacities: the largest load at which every session
played without underrun, deadline / fifo (``capacity_ratio``). The sum over the saturation loads
weighs the loads far beyond capacity as much as the knee, and there every policy fails (the
machine's CPU, not the model's order of service, is then the limit); it is reported beside it.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from bench.load import SessionResult, one_session
from bench.process import GatewayProcess
from bench.report import fmt, markdown_table, summary

__all__ = [
    "PASSAGE",
    "POLICIES",
    "SweepPlan",
    "compute_bound",
    "largest_clean_load",
    "load_cap",
    "lost_loads",
    "next_load",
    "policy_comparison",
    "report",
    "saturation_loads",
    "stagger_s",
    "sweep_backend",
]

POLICIES: Final = ("deadline", "fifo")
# About 80 words, 30 s of speech: several sentences, with clauses, as an LLM would answer.
PASSAGE: Final = (
    "The harbour woke slowly that morning. Fishing boats drifted back through the mist, their "
    "engines low and tired, while gulls argued over the nets. On the quay, a woman in a yellow "
    "coat counted crates of mackerel and wrote the numbers on a board. Nobody spoke much. The "
    "market would open at seven, the buyers would haggle until eight, and by nine the whole "
    "catch would be on its way inland, packed in ice, to restaurants that had never seen the sea."
)
_TOLERANCE_S: Final = 0.05
_SPREAD_OF_PASSAGE: Final = 0.25
# The search (next_load): start at half the bound, grow by half, refine the knee to 15 %, then
# two loads beyond it, 25 % apart.
_START: Final = 0.5
_GROW: Final = 1.5
_REFINE_WITHIN: Final = 0.15
_BEYOND: Final = 2
_BEYOND_STEP: Final = 1.25


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What to sweep and how."""

    backends: tuple[str, ...] = ("kokoro", "piper")
    max_sessions: int = 64
    max_over_bound: float = 1.5  # no load above this multiple of the compute bound
    stagger_s: float = 0.3
    tokens_per_s: float = 40.0
    tolerance_s: float = _TOLERANCE_S
    text: str = PASSAGE

    def __post_init__(self) -> None:
        if self.max_over_bound <= 0:
            raise ValueError("max_over_bound: must be above 0")
        if self.max_sessions < 1:
            raise ValueError("max_sessions: at least 1")


def compute_bound(rtf: float, *, cores: float, model_cores: float) -> float:
    """Real-time sessions the model can serve: ``cores`` over the compute one session needs
    (``rtf`` seconds of a model that occupies ``model_cores``, per second of audio)."""
    if rtf <= 0 or model_cores <= 0:
        return math.inf
    return cores / (rtf * model_cores)


def load_cap(bound: float, max_over_bound: float, max_sessions: int) -> int:
    """The largest load of a sweep: ``max_over_bound`` times the bound, at most
    ``max_sessions``, at least 2."""
    if not math.isfinite(bound):
        return max_sessions
    return max(2, min(max_sessions, math.ceil(max_over_bound * bound)))


def lost_loads(clean: Mapping[int, Mapping[str, int]]) -> list[int]:
    """The loads at which some policy lost a session (``clean[n][policy] < n``), ascending."""
    return sorted(n for n, counts in clean.items() if min(counts.values()) < n)


def next_load(clean: Mapping[int, Mapping[str, int]], *, bound: float, cap: int) -> int | None:
    """The next load of the search in the module docstring, from the sessions without underrun
    so far (``clean[n][policy]``); None when the sweep is done."""
    if not clean:
        return 1
    top, lost = max(clean), lost_loads(clean)
    if not lost:
        if top >= cap:
            return None
        step = round(_START * bound) if top == 1 and math.isfinite(bound) else round(top * _GROW)
        return min(cap, max(top + 1, step))
    knee = lost[0]
    below = max((n for n in clean if n < knee), default=0)
    if below and knee - below > max(1.0, _REFINE_WITHIN * knee):
        return (below + knee) // 2
    done = sum(1 for n in clean if n > knee) >= _BEYOND or max(clean[top].values()) == 0
    return None if done or top >= cap else min(cap, max(top + 1, round(top * _BEYOND_STEP)))


def stagger_s(sessions: int, stagger: float, audio_s: float) -> float:
    """The gap between session starts: ``stagger``, or less, so that the starts spread over at
    most a quarter of the passage's ``audio_s`` (every session overlaps every other)."""
    if sessions < 2:
        return 0.0
    return min(stagger, _SPREAD_OF_PASSAGE * audio_s / (sessions - 1))


def saturation_loads(clean: Mapping[int, Mapping[str, int]]) -> list[int]:
    """The loads at which a session was lost on either gateway; the largest load if none."""
    return lost_loads(clean) or [max(clean)]


def policy_comparison(
    points: Mapping[str, Mapping[int, Mapping[str, Any]]], loads: Sequence[int]
) -> dict[str, Any]:
    """The policies at ``loads`` (``points[policy][n]`` has ``clean`` and ``stall_s``): sessions
    without underrun and silence heard, summed per policy, and the ratios that say how much
    better the scheduler did: deadline / fifo sessions without underrun (1 when both had none,
    inf when only the scheduler had any) and fifo / deadline silence."""
    clean = {p: sum(points[p][n]["clean"] for n in loads if n in points[p]) for p in POLICIES}
    stall = {p: sum(points[p][n]["stall_s"] for n in loads if n in points[p]) for p in POLICIES}
    return {
        "loads": list(loads),
        "clean": clean,
        "ratio": _ratio(clean["deadline"], clean["fifo"]),
        "stall_s": stall,
        "stall_ratio": _ratio(stall["fifo"], stall["deadline"]),
        "scheduler_better": clean["deadline"] > clean["fifo"],
    }


def _ratio(better: float, worse: float) -> float:
    """``better / worse``, 1 when both are 0 (a tie), inf when only ``worse`` is 0."""
    if worse:
        return better / worse
    return math.inf if better else 1.0


def largest_clean_load(clean: Mapping[int, int]) -> int:
    """The largest load ``n`` at which all ``n`` sessions played without underrun (0: none)."""
    return max((n for n, count in clean.items() if count == n), default=0)


async def _timed_session(
    url: str, backend: str, delay_s: float, plan: SweepPlan, limit_s: float
) -> SessionResult:
    await asyncio.sleep(delay_s)
    try:
        async with asyncio.timeout(limit_s):
            return await one_session(
                url, backend, plan.text, plan.tokens_per_s, tolerance_s=plan.tolerance_s
            )
    except TimeoutError:
        return SessionResult(errors=[f"no done within {limit_s:.0f} s"])


async def run_load(
    gateway: GatewayProcess, backend: str, sessions: int, plan: SweepPlan, audio_s: float
) -> dict[str, Any]:
    """``sessions`` staggered sessions on ``gateway``: who played without underrun, and what
    the gateway and this process spent."""
    gap = stagger_s(sessions, plan.stagger_s, audio_s)
    limit = 4 * audio_s + 60
    cpu, client_cpu, started = gateway.cpu_seconds(), time.process_time(), time.monotonic()
    results = await asyncio.gather(
        *(_timed_session(gateway.url, backend, i * gap, plan, limit) for i in range(sessions))
    )
    played = sum(r.audio_s for r in results)
    ttfa = [r.ttfa_ms for r in results if r.ttfa_ms is not None]
    rtf = [r.real_time_factor for r in results if r.real_time_factor is not None]
    return {
        "sessions": sessions,
        "stagger_s": gap,
        "clean": sum(1 for r in results if r.clean),
        "underruns": sum(r.underruns for r in results),
        "gateway_underruns": sum(r.gateway_underruns for r in results),
        "stall_s": sum(r.stall_s for r in results),
        "errors": sum(len(r.errors) for r in results),
        "error_samples": [e for r in results for e in r.errors][:3],
        "ttfa_ms": summary(ttfa),
        "rtf": statistics.median(rtf) if rtf else None,
        "audio_s": played,
        "wall_s": time.monotonic() - started,
        "gateway_cpu_per_audio_s": (gateway.cpu_seconds() - cpu) / played if played else None,
        "client_cpu_s": time.process_time() - client_cpu,
    }


def _bounds(calibration: list[dict[str, Any]], cores: int, model_cores: float) -> dict[str, Any]:
    """The compute bounds from single-session runs (one per policy)."""
    rtf = statistics.median(c["rtf"] for c in calibration if c["rtf"] is not None)
    cpu = [c["gateway_cpu_per_audio_s"] for c in calibration if c["gateway_cpu_per_audio_s"]]
    cpu_per_audio_s = statistics.median(cpu) if cpu else None
    return {
        "single_session_rtf": rtf,
        "model_cores": model_cores,
        "compute_bound": compute_bound(rtf, cores=cores, model_cores=model_cores),
        "cpu_per_audio_s": cpu_per_audio_s,
        "cpu_bound": cores / cpu_per_audio_s if cpu_per_audio_s else None,
        "audio_s": statistics.median(c["audio_s"] for c in calibration),
    }


async def _both(
    gateways: Mapping[str, GatewayProcess],
    backend: str,
    n: int,
    plan: SweepPlan,
    audio_s: float,
    first: str,
) -> dict[str, dict[str, Any]]:
    """Load ``n`` on the gateway of each policy, ``first``'s first."""
    order = sorted(POLICIES, key=lambda policy: policy != first)
    return {p: await run_load(gateways[p], backend, n, plan, audio_s) for p in order}


async def sweep_backend(
    gateways: Mapping[str, GatewayProcess],
    backend: str,
    plan: SweepPlan,
    *,
    cores: int,
    model_cores: float,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The sweep of one backend on the gateways of both policies (``gateways[policy]``)."""
    points: dict[int, dict[str, dict[str, Any]]] = {}
    points[1] = await _both(gateways, backend, 1, plan, 30.0, POLICIES[0])
    bounds = _bounds(list(points[1].values()), cores, model_cores)
    cap = load_cap(bounds["compute_bound"], plan.max_over_bound, plan.max_sessions)
    log(f"  {backend}: RTF {bounds['single_session_rtf']:.3f}, compute bound "
        f"{bounds['compute_bound']:.1f}, loads up to {cap}")  # fmt: skip
    clean = {1: {p: points[1][p]["clean"] for p in POLICIES}}
    while (n := next_load(clean, bound=bounds["compute_bound"], cap=cap)) is not None:
        first = POLICIES[len(points) % 2]  # neither policy always goes first
        points[n] = await _both(gateways, backend, n, plan, bounds["audio_s"], first)
        clean[n] = {p: points[n][p]["clean"] for p in POLICIES}
        log(f"  {backend} N={n:<3} without underrun: {clean[n]}")
    return _summarize(backend, bounds, points, clean)


def _summarize(
    backend: str,
    bounds: dict[str, Any],
    points: dict[int, dict[str, dict[str, Any]]],
    clean: dict[int, dict[str, int]],
) -> dict[str, Any]:
    by_policy = {p: {n: points[n][p] for n in sorted(points)} for p in POLICIES}
    largest = {p: largest_clean_load({n: c[p] for n, c in clean.items()}) for p in POLICIES}
    bound = bounds["compute_bound"]
    return {
        "backend": backend,
        **bounds,
        "grid": sorted(points),
        "points": {p: {str(n): point for n, point in by_policy[p].items()} for p in POLICIES},
        "largest_clean_load": largest,
        "largest_over_bound": {p: largest[p] / bound for p in POLICIES},
        "capacity_ratio": _ratio(largest["deadline"], largest["fifo"]),
        "saturation": policy_comparison(by_policy, saturation_loads(clean)),
    }


_LOAD_HEADERS: Final = (
    "backend",
    "N",
    "without underrun",
    "first audio median, ms",
    "first audio p95, ms",
    "silence heard, s",
    "errors",
)
_BOUND_HEADERS: Final = (
    "backend",
    "RTF alone",
    "compute bound (CPU-based)",
    "largest N all without underrun",
    "largest N / bound",
    "capacity deadline / fifo",
    "saturation loads",
    "without underrun at saturation",
    "deadline / fifo",
    "silence at saturation, s",
)


def _by_policy(figures: Mapping[str, Any], key: str | None = None, digits: int = 0) -> str:
    """``deadline / fifo`` of ``figures[policy]`` (or of ``figures[policy][key]``)."""
    values = [figures[p] if key is None else figures[p][key] for p in POLICIES]
    return " / ".join(fmt(value, digits) for value in values)


def _load_row(name: str, n: int, sweep: Mapping[str, Any]) -> tuple[object, ...]:
    point = {p: sweep["points"][p][str(n)] for p in POLICIES}
    ttfa = {p: point[p]["ttfa_ms"] for p in POLICIES}
    return (
        name,
        n,
        _by_policy(point, "clean"),
        _by_policy(ttfa, "median"),
        _by_policy(ttfa, "p95"),
        _by_policy(point, "stall_s", 1),
        _by_policy(point, "errors"),
    )


def _bound_row(name: str, sweep: Mapping[str, Any]) -> tuple[object, ...]:
    saturation = sweep["saturation"]
    return (
        name,
        fmt(sweep["single_session_rtf"], 3),
        f"{fmt(sweep['compute_bound'], 1)} ({fmt(sweep['cpu_bound'], 1)})",
        _by_policy(sweep["largest_clean_load"]),
        _by_policy(sweep["largest_over_bound"], digits=2),
        fmt(sweep["capacity_ratio"], 2),
        ", ".join(map(str, saturation["loads"])),
        _by_policy(saturation["clean"]),
        fmt(saturation["ratio"], 2),
        _by_policy(saturation["stall_s"], digits=1),
    )


def report(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Per backend and load, deadline / fifo: sessions without underrun, first-audio times,
    silence heard, errors; then the bounds and the comparison at saturation."""
    loads = [_load_row(name, n, r) for name, r in results.items() for n in r["grid"]]
    bounds = [_bound_row(name, r) for name, r in results.items()]
    return (
        "Each pair of figures: deadline / fifo.\n\n"
        f"{markdown_table(_LOAD_HEADERS, loads)}\n\n{markdown_table(_BOUND_HEADERS, bounds)}"
    )
