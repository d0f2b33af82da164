"""The benchmark suite (issue 8): one command for the figures that matter, on loopback.

    python -m bench.suite [--quick] [--runs 20] [--out bench/results] [--parts ...]

(``make bench`` runs it; ``BENCH_ARGS`` passes options.) Nine parts, and the ONNX Runtime tuning:

1. ``ttfa``: time to first audio per backend (kokoro, piper, espeak) at the client, median and
   p95 over ``--runs`` sessions, from sending the token that completes the first segment to the
   first audio frame (:func:`bench.backends.session_figures`). Each session streams the first
   sentence of :data:`bench.backends.PASSAGE` as LLM tokens at 40 tokens/s: a short text keeps a
   run to its synthesis time, since a long one is paced to its listener; the first segment is
   the same either way.
2. ``rtf``: real-time factor per backend: the 200-word passage's segments synthesized directly
   in this process (wall and CPU time over audio, :func:`bench.backends.direct`), beside the
   gateway's own figure for the sessions of part 1.
3. ``overhead``: the gateway's own cost with a zero-cost backend (:mod:`bench.overhead`), and
   its CPU as a share of each backend's synthesis CPU from part 2.
4. ``sweep``: the concurrency sweep, Kokoro and Piper, deadline scheduling against first come,
   first served (:mod:`bench.sweep`, whose docstring defines saturation).
5. ``memory``: the gateway's RSS per idle and per active Kokoro session (:mod:`bench.memory`).
6. ``opus``: Opus encoding CPU per stream (:func:`bench.first_audio.opus_cost`).
7. ``tuning``: ONNX Runtime threads, session options and warm-up (:mod:`bench.onnx_tuning`).
8. ``streaming``: Kokoro streaming inside a sentence: first audio from the first clause, gapless
   start, underruns and silences inside clauses, CPU against direct synthesis
   (:mod:`bench.streaming`).
9. ``cluster``: replicas behind HAProxy: the time to first audio HAProxy adds, espeak sessions
   held by 1 and by 3 replicas on the same cores, a ``/metrics`` scrape with 100 sessions
   (:mod:`bench.cluster`).
10. ``elevenlabs``: what the ElevenLabs-compatible edge adds to the time to first audio, against
    ``/v1/stream``, with the zero-cost backend (:mod:`bench.elevenlabs_edge`).

The gateways under test run as processes of their own (``python -m gateway serve`` on
config.toml, one per scheduling policy, and ``python -m bench.zero``); the clients and the
direct measurements run in this one, one part at a time (the sweep, the longest, last). A part
that fails is reported with its error and the others go on. ``--quick`` is a smoke run (a few
runs, a small sweep of a short passage) of about two minutes.

Prints a markdown table per part, headed by the machine, and writes ``suite.json``,
``suite.md`` and ``suite.png`` (time-to-first-audio distributions and the sweeps) to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench import backends as backends_bench
from bench import cluster, elevenlabs_edge, memory, onnx_tuning, overhead, streaming, sweep
from bench.first_audio import opus_cost
from bench.machine import cores, describe, machine_info
from bench.plot import plot_suite
from bench.process import GATEWAY_COMMAND, REPO, GatewayProcess, gateway_process
from bench.report import Target, fmt, markdown_table, write_results
from gateway.config import Config, load_config

__all__ = ["PARTS", "SuitePlan", "main", "model_cores", "plan_for", "run_suite", "targets"]

PARTS: Final = (
    "ttfa",
    "rtf",
    "overhead",
    "sweep",
    "memory",
    "opus",
    "tuning",
    "streaming",
    "cluster",
    "elevenlabs",
)
TTFA_TARGET_MS: Final = {"kokoro": 250.0, "piper": 120.0, "espeak": 20.0}
KOKORO_TTFA_P95_MS: Final = 300.0
CLAUSE_SILENCE_S: Final = 0.25
GAPLESS_RATIO: Final = 1.25
STREAMING_CPU_RATIO: Final = 1.10
OVERHEAD_TARGET: Final = 0.03
SWEEP_TARGET: Final = 0.8
ZERO_COMMAND: Final = ("-m", "bench.zero")
ZERO_BACKEND: Final = "zero"
_FIRST_SENTENCE: Final = backends_bench.PASSAGE.split(". ")[0] + "."
_TWO_SENTENCES: Final = ". ".join(backends_bench.PASSAGE.split(". ")[:2]) + "."
_SHORT_SWEEP_TEXT: Final = ". ".join(sweep.PASSAGE.split(". ")[:2]) + "."

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class SuitePlan:
    """How much of each part to run (the defaults are the full suite)."""

    runs: int = 20
    backends: tuple[str, ...] = ("kokoro", "piper", "espeak")
    tokens_per_s: float = 40.0
    ttfa_text: str = _FIRST_SENTENCE
    direct_reps: int = 3
    direct_text: str = backends_bench.PASSAGE
    setup_runs: int = 20
    overhead_streams: int = 10
    overhead_text: str = sweep.PASSAGE
    memory_backend: str = "kokoro"
    memory_idle: int = 20
    memory_active: int = 4
    memory_text: str = _SHORT_SWEEP_TEXT
    opus_seconds: float = 30.0
    edge_runs: int = 30
    tuning_reps: int = 3
    streaming_runs: int = 10
    quick: bool = False
    sweep: sweep.SweepPlan = field(default_factory=sweep.SweepPlan)


def plan_for(*, quick: bool, runs: int | None = None) -> SuitePlan:
    """The full plan, or the ``quick`` smoke plan; ``runs`` overrides the first-audio runs."""
    if not quick:
        return SuitePlan(runs=runs or 20)
    small_sweep = sweep.SweepPlan(max_sessions=3, text=_SHORT_SWEEP_TEXT)
    return SuitePlan(
        runs=runs or 3,
        direct_reps=1,
        direct_text=_TWO_SENTENCES,
        setup_runs=5,
        overhead_streams=3,
        overhead_text=_SHORT_SWEEP_TEXT,
        memory_idle=4,
        memory_active=2,
        opus_seconds=5.0,
        edge_runs=5,
        tuning_reps=1,
        streaming_runs=2,
        quick=True,
        sweep=small_sweep,
    )


def model_cores(config: Config, backend: str, machine_cores: int) -> float:
    """The cores a backend's model occupies when busy: its threads (0: every core) times the
    inferences it runs at once, at most every core."""
    settings = config.backends[backend]
    threads = getattr(settings, "threads", 0) or machine_cores
    return float(min(machine_cores, threads * settings.max_concurrency))


def _fifo_env(backends: tuple[str, ...]) -> dict[str, str]:
    return {f"TTSGW_BACKENDS__{name.upper()}__SCHEDULING": "fifo" for name in backends}


@dataclass(frozen=True, slots=True)
class _Run:
    """What every part gets: the plan, the gateways, the config, the log, earlier parts."""

    plan: SuitePlan
    gateways: dict[str, GatewayProcess]
    config: Config
    log: Log
    done: dict[str, Any]


async def _ttfa(run: _Run) -> dict[str, Any]:
    results = {}
    for name in run.plan.backends:
        run.log(f"part 1: time to first audio, {name} ({run.plan.runs} runs)")
        results[name] = await backends_bench.session_figures(
            run.gateways["deadline"].url,
            name,
            runs=run.plan.runs,
            tokens_per_s=run.plan.tokens_per_s,
            text=run.plan.ttfa_text,
        )
    return results


async def _rtf(run: _Run) -> dict[str, Any]:
    plan = run.plan
    run.log(f"part 2: real-time factor, direct synthesis ({plan.direct_reps} reps)")
    loaded, loads = await backends_bench.load_backends(run.config, list(plan.backends))
    try:
        return {
            name: {
                "load_s": loads[name],
                "words": len(plan.direct_text.split()),
                **await backends_bench.direct_figures(
                    backend, reps=plan.direct_reps, text=plan.direct_text
                ),
            }
            for name, backend in loaded.items()
        }
    finally:
        for backend in loaded.values():
            await backend.aclose()


async def _overhead(run: _Run) -> dict[str, Any]:
    run.log("part 3: gateway overhead with the zero-cost backend")
    plan = run.plan
    result = await overhead.gateway_overhead(
        run.gateways["zero"],
        runs=plan.setup_runs,
        streams=plan.overhead_streams,
        text=plan.overhead_text,
        tokens_per_s=plan.tokens_per_s,
    )
    rtf = _figures(run.done, "rtf")
    if rtf:
        synthesis = {name: figures["direct_cpu_per_audio_s"] for name, figures in rtf.items()}
        cpu = result["streaming"]["cpu_per_audio_s"]
        result["ratio_to_synthesis"] = overhead.overhead_ratios(cpu, synthesis)
    return result


async def _sweep(run: _Run) -> dict[str, Any]:
    machine_cores = cores()
    pair = {policy: run.gateways[policy] for policy in sweep.POLICIES}
    results = {}
    for name in run.plan.sweep.backends:
        run.log(f"part 4: concurrency sweep, {name}")
        results[name] = await sweep.sweep_backend(
            pair,
            name,
            run.plan.sweep,
            cores=machine_cores,
            model_cores=model_cores(run.config, name, machine_cores),
            log=run.log,
        )
    return results


async def _memory(run: _Run) -> dict[str, Any]:
    run.log("part 5: memory per session")
    plan = run.plan
    return await memory.memory_per_session(
        run.gateways["deadline"],
        backend=plan.memory_backend,
        idle=plan.memory_idle,
        active=plan.memory_active,
        text=plan.memory_text,
        tokens_per_s=plan.tokens_per_s,
    )


async def _opus(run: _Run) -> dict[str, Any]:
    run.log("part 6: Opus encoding cost")
    cpu = opus_cost(run.plan.opus_seconds)
    return {
        "cpu_per_audio_s": cpu,
        "streams_per_core": 1 / cpu if cpu else math.inf,
        "seconds_encoded": run.plan.opus_seconds,
    }


async def _streaming(run: _Run) -> dict[str, Any]:
    run.log(f"part 8: Kokoro streaming inside a sentence ({run.plan.streaming_runs} runs each)")
    runs = run.plan.streaming_runs
    return await streaming.streaming_figures(
        run.gateways["deadline"], runs=runs, reps=max(3, runs // 2)
    )


async def _elevenlabs(run: _Run) -> dict[str, Any]:
    run.log(f"part 10: the ElevenLabs edge against /v1/stream ({run.plan.edge_runs} runs each)")
    return await elevenlabs_edge.compare_edges(
        run.gateways["zero"], backend=ZERO_BACKEND, runs=run.plan.edge_runs
    )


async def _tuning(run: _Run) -> dict[str, Any]:
    run.log("ONNX Runtime tuning")
    return await onnx_tuning.tune(reps=run.plan.tuning_reps, quick=run.plan.quick, log=run.log)


async def _cluster(run: _Run) -> dict[str, Any]:
    run.log("part 9: replicas behind HAProxy (espeak), /metrics scrape cost")
    return await cluster.measure(runs=run.plan.runs, quick=run.plan.quick)


# The parts in the order they run: the sweep, the longest, last.
_RUNNERS: Final[dict[str, Callable[[_Run], Awaitable[dict[str, Any]]]]] = {
    "ttfa": _ttfa,
    "rtf": _rtf,
    "overhead": _overhead,
    "memory": _memory,
    "opus": _opus,
    "elevenlabs": _elevenlabs,
    "tuning": _tuning,
    "streaming": _streaming,
    "cluster": _cluster,
    "sweep": _sweep,
}


def _figures(result: dict[str, Any], part: str) -> dict[str, Any]:
    """A part's figures; empty if it did not run or failed."""
    figures = result.get(part, {})
    return {} if "error" in figures else figures


async def _gateways(
    stack: contextlib.AsyncExitStack, parts: set[str], plan: SuitePlan, log: Log
) -> dict[str, GatewayProcess]:
    """The gateway processes the chosen parts need, started one after another."""
    wanted: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {}
    if parts & {"ttfa", "memory", "sweep", "streaming"}:
        wanted["deadline"] = (GATEWAY_COMMAND, {})
    if "sweep" in parts:
        wanted["fifo"] = (GATEWAY_COMMAND, _fifo_env(plan.sweep.backends))
    if parts & {"overhead", "elevenlabs"}:
        wanted["zero"] = (ZERO_COMMAND, {})
    started = {}
    for role, (command, env) in wanted.items():
        log(f"starting the {role} gateway")
        started[role] = await stack.enter_async_context(gateway_process(command, env=env))
    return started


async def _run_parts(
    parts: set[str], plan: SuitePlan, gateways: dict[str, GatewayProcess], log: Log
) -> dict[str, Any]:
    """Each chosen part in turn; one that fails is recorded with its error, the others go on."""
    run = _Run(plan, gateways, load_config(REPO / "config.toml"), log, {})
    for part, runner in _RUNNERS.items():
        if part not in parts:
            continue
        try:
            run.done[part] = await runner(run)
        except Exception as exc:  # a failed part must not lose the other parts' figures
            log(f"{part} failed: {type(exc).__name__}: {exc}")
            run.done[part] = {"error": f"{type(exc).__name__}: {exc}"}
    return run.done


async def run_suite(plan: SuitePlan, parts: set[str], log: Log) -> dict[str, Any]:
    """Run the chosen parts; the result as the suite's JSON."""
    machine, started = machine_info(), time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        gateways = await _gateways(stack, parts, plan, log)
        figures = await _run_parts(parts, plan, gateways, log)
    result: dict[str, Any] = {
        "machine": machine,
        "plan": dataclasses.asdict(plan),
        **figures,
        "duration_s": time.monotonic() - started,
        "load_average_at_end": list(os.getloadavg()),
    }
    result["targets"] = [target.as_dict() for target in targets(result)]
    return result


def targets(result: dict[str, Any]) -> list[Target]:
    """The issue's targets, for the parts that ran."""
    found: list[Target] = []
    for name, figures in _figures(result, "ttfa").items():
        if name in TTFA_TARGET_MS:
            found.append(
                Target(
                    f"{name} median time to first audio, ms",
                    figures["ttfa_ms"]["median"],
                    "<=",
                    TTFA_TARGET_MS[name],
                )
            )
    found += _streaming_targets(_figures(result, "streaming"))
    if edge := _figures(result, "elevenlabs"):
        found.append(elevenlabs_edge.target(edge))
    ratios = _figures(result, "overhead").get("ratio_to_synthesis", {})
    if "kokoro" in ratios:
        found.append(
            Target("gateway CPU / Kokoro synthesis CPU", ratios["kokoro"], "<=", OVERHEAD_TARGET)
        )
    for name, figures in _figures(result, "sweep").items():
        if name == "kokoro":
            found.append(
                Target(
                    "Kokoro sessions without underrun / compute bound (deadline)",
                    figures["largest_over_bound"]["deadline"],
                    ">=",
                    SWEEP_TARGET,
                )
            )
        found.append(
            Target(
                f"{name}: most sessions without underrun, deadline / fifo",
                figures["capacity_ratio"],
                ">",
                1.0,
            )
        )
    return found


def _streaming_targets(figures: dict[str, Any]) -> list[Target]:
    found: list[Target] = []
    for key, r in figures.items():
        if key == "cpu":
            found.append(Target("Kokoro gateway CPU / direct whole-sentence synthesis CPU",
                                r["ratio"], "<=", STREAMING_CPU_RATIO))  # fmt: skip
            continue
        if key.endswith("/tokens"):
            found += [
                Target(f"kokoro {key}: median TTFA from the first clause, ms",
                       r["ttfa_ms"]["median"], "<=", TTFA_TARGET_MS["kokoro"]),
                Target(f"kokoro {key}: p95 TTFA, ms", r["ttfa_ms"]["p95"], "<=",
                       KOKORO_TTFA_P95_MS),
            ]  # fmt: skip
        else:
            found.append(Target(f"kokoro {key}: gapless start / first audio",
                                r["gapless_over_first_audio"], "<=", GAPLESS_RATIO))  # fmt: skip
        found += [
            Target(f"kokoro {key}: underruns", r["underruns"], "<=", 0),
            Target(f"kokoro {key}: longest silence inside a clause beyond the model's own, s",
                   r["longest_added_silence_s"], "<=", CLAUSE_SILENCE_S),
        ]  # fmt: skip
    return found


def _ttfa_table(ttfa: dict[str, Any]) -> str:
    rows = [
        (
            name,
            r["first_segment_chars"],
            fmt(r["ttfa_ms"]["median"], 1),
            fmt(r["ttfa_ms"]["p95"], 1),
            fmt(r["ttfa_ms"]["min"], 1),
            fmt(r["ttfa_ms"]["max"], 1),
            f"{r['ttfa_ms']['n']}" + (f" ({r['failed']} failed)" if r.get("failed") else ""),
            f"<= {TTFA_TARGET_MS[name]:.0f}" if name in TTFA_TARGET_MS else "",
        )
        for name, r in ttfa.items()
    ]
    return markdown_table(
        [
            "backend",
            "first segment, chars",
            "median, ms",
            "p95, ms",
            "min, ms",
            "max, ms",
            "runs",
            "target, ms",
        ],
        rows,
    )


def _rtf_table(rtf: dict[str, Any], ttfa: dict[str, Any]) -> str:
    rows = [
        (
            name,
            fmt(r["direct_rtf"], 4),
            fmt(r["direct_cpu_per_audio_s"], 4),
            fmt(1 / r["direct_rtf"], 0),
            fmt(ttfa[name]["session_rtf"]["median"], 4) if name in ttfa else "-",
            fmt(r["direct_audio_s"], 1, "s"),
            fmt(r["load_s"], 2, "s"),
        )
        for name, r in rtf.items()
    ]
    return markdown_table(
        [
            "backend",
            "RTF (wall), direct",
            "CPU s per audio s, direct",
            "streams the model keeps up with (1 / RTF)",
            "RTF in the sessions of part 1",
            "audio",
            "load + warm-up",
        ],
        rows,
    )


def _opus_table(opus: dict[str, Any]) -> str:
    cpu = opus["cpu_per_audio_s"]
    return markdown_table(
        ["measure", "value"],
        [
            ("CPU per second of audio, one stream", fmt(cpu * 1000, 2, "ms")),
            ("share of a core per real-time stream", fmt(cpu * 100, 2, "%")),
            ("real-time streams one core can encode", fmt(opus["streams_per_core"], 0)),
        ],
    )


def _targets_table(found: list[dict[str, Any]]) -> str:
    verdict = {True: "met", False: "NOT met", None: "not measured"}
    rows = [
        (
            t["name"],
            "-" if t["value"] is None else f"{t['value']:.3g}",
            f"{t['op']} {t['limit']:g}",
            verdict[t["met"]],
        )
        for t in found
    ]
    return markdown_table(["target", "measured", "limit", "verdict"], rows)


_SECTIONS: Final = (
    ("ttfa", "1. Time to first audio at the client (loopback)"),
    ("rtf", "2. Real-time factor (synthesis time over audio time)"),
    ("overhead", "3. Gateway overhead (zero-cost backend)"),
    ("sweep", "4. Concurrency sweep (sessions without underrun; deadline / fifo)"),
    ("memory", "5. Memory per session (gateway RSS)"),
    ("opus", "6. Opus encoding cost per stream"),
    ("tuning", "ONNX Runtime tuning (Kokoro)"),
    ("streaming", "8. Kokoro streaming inside a sentence"),
    ("cluster", "9. Replicas behind HAProxy (bench/cluster.py)"),
    ("elevenlabs", "10. The ElevenLabs-compatible edge: time to first audio against /v1/stream"),
)


def _section_table(part: str, result: dict[str, Any]) -> str:
    tables: dict[str, Callable[[], str]] = {
        "ttfa": lambda: _ttfa_table(result["ttfa"]),
        "rtf": lambda: _rtf_table(result["rtf"], _figures(result, "ttfa")),
        "overhead": lambda: overhead.report(result["overhead"]),
        "sweep": lambda: sweep.report(result["sweep"]),
        "memory": lambda: memory.report(result["memory"]),
        "opus": lambda: _opus_table(result["opus"]),
        "elevenlabs": lambda: elevenlabs_edge.report(result["elevenlabs"]),
        "tuning": lambda: onnx_tuning.report(result["tuning"]),
        "streaming": lambda: streaming.report(result["streaming"]),
        "cluster": lambda: cluster.report(result["cluster"]),
    }
    return tables[part]()


def render(result: dict[str, Any]) -> str:
    """The whole report in markdown: the machine, a section per part that ran, the targets."""
    mode = "quick (smoke) run" if result["plan"]["quick"] else "full run"
    lines = [
        f"# Benchmark suite: {mode}",
        "",
        f"Machine: {describe(result['machine'])}.",
        f"Took {result['duration_s'] / 60:.1f} min; load average at the end: "
        + ", ".join(f"{v:.2f}" for v in result["load_average_at_end"])
        + ".",
    ]
    for part, heading in _SECTIONS:
        if part in result:
            error = result[part].get("error")
            body = f"This part failed: {error}" if error else _section_table(part, result)
            lines += ["", f"## {heading}", "", body]
    if result["targets"]:
        lines += ["", "## Targets", "", _targets_table(result["targets"])]
    return "\n".join(lines) + "\n"


def _plot(out: Path, result: dict[str, Any]) -> Path:
    runs = {name: r["ttfa_ms_runs"] for name, r in _figures(result, "ttfa").items()}
    return plot_suite(
        out / "suite.png",
        runs,
        _figures(result, "sweep"),
        targets=TTFA_TARGET_MS,
        title=describe(result["machine"]),
    )


def _parts(text: str) -> set[str]:
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = chosen - set(PARTS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown part(s): {', '.join(sorted(unknown))}")
    return chosen


def main() -> None:
    """``python -m bench.suite``: run, print the report, write JSON, markdown and PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about two minutes")
    parser.add_argument("--runs", type=int, help="first-audio runs per backend (default 20)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--parts",
        type=_parts,
        default=set(PARTS),
        help=f"comma-separated, of: {','.join(PARTS)} (default: all)",
    )
    args = parser.parse_args()
    log = functools.partial(print, file=sys.stderr, flush=True)
    result = asyncio.run(run_suite(plan_for(quick=args.quick, runs=args.runs), args.parts, log))
    text = render(result)
    print(text)
    written = [*write_results(args.out, "suite", result, text), _plot(args.out, result)]
    log("wrote " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    main()
