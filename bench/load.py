"""Load generator: N concurrent real-time sessions against a gateway process on loopback.

    python -m bench.load --sessions 100 --backend espeak [--seconds 20] [--ramp-s 5]

Starts ``python -m gateway serve`` (the repository's config.toml) in its own process, then
opens N sessions from this process, their starts spread evenly over ``--ramp-s`` seconds (5 by
default, as users arrive; 0 opens them all at the same instant), each streaming a paragraph as
LLM tokens; with about 18 s of audio each, all N overlap. For every
session it records the time to first audio (from the token that completed the first segment),
the gaps between audio frames as they arrive, underruns of a client that starts playing at the
first frame and plays in real time and how long it stalled in all (its stall time), whether the
gateway said it was saturated (``progress.saturated``), errors, and whether every character was
spoken. Prints a table (with the cores the gateway and this process used) and writes
bench/results/load.json, with every session's stall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.listener import Listener
from bench.process import gateway_process
from bench.report import write_results
from gateway.core.protocol import Audio, Done, Error, Progress, SegmentStart
from tts_gateway_client import connect
from tts_gateway_client.say import completing_send, simulated_llm

REPO = Path(__file__).resolve().parent.parent
PARAGRAPH = (
    "The night train left the city a little after ten. Most passengers were asleep before "
    "the first tunnel, but a few stayed by the windows, watching the lights of small towns "
    "slide past. Somewhere near the border the train slowed, and a guard walked the length "
    "of the carriages with a lamp, checking tickets and wishing everyone a quiet journey. "
)


@dataclass
class SessionResult:
    """What the client of one session saw."""

    ttfa_ms: float | None = None
    gaps_ms: list[float] = field(default_factory=list)
    underruns: int = 0
    stall_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    text_lost: int = 0
    audio_s: float = 0.0
    real_time_factor: float | None = None  # the gateway's synthesis time over speech time
    gateway_underruns: int = 0  # the gateway's own estimate (done.metrics, no tolerance)
    saturated_reports: int = 0  # progress messages that said the gateway was saturated

    @property
    def clean(self) -> bool:
        """Played to the end without an underrun or an error."""
        return self.audio_s > 0 and self.underruns == 0 and not self.errors


async def one_session(
    url: str,
    backend: str,
    text: str,
    tokens_per_s: float,
    *,
    tolerance_s: float = 0.020,
) -> SessionResult:
    """Stream ``text`` as LLM tokens through one session; a listener plays it in real time from
    the first frame (a frame more than ``tolerance_s`` late for its turn is an underrun)."""
    result = SessionResult()
    try:
        async with connect(url, backend=backend, open_timeout_s=60) as stream:
            rate = stream.ready.sample_rate
            listener = Listener(rate, tolerance_s)
            stream.feed(simulated_llm(text, tokens_per_s))
            trigger_at: float | None = None
            first_audio: float | None = None
            previous: float | None = None
            async for message in stream:
                now = time.monotonic()
                if isinstance(message, Audio):
                    listener.arrive(now, message.sample_start)
                    first_audio = first_audio or now
                    if previous is not None:
                        result.gaps_ms.append((now - previous) * 1000)
                    previous = now
                    result.audio_s = (message.sample_start + stream.ready.frame_samples) / rate
                elif isinstance(message, SegmentStart) and trigger_at is None:
                    trigger = completing_send(stream.sent, message)
                    trigger_at = None if trigger is None else trigger.at
                elif isinstance(message, Progress):
                    result.saturated_reports += message.saturated
                elif isinstance(message, Error):
                    result.errors.append(f"{message.code}: {message.message}")
                elif isinstance(message, Done):
                    result.text_lost = len(text) - message.metrics["chars_spoken"]
                    result.real_time_factor = message.metrics["real_time_factor"]
                    result.gateway_underruns = message.metrics.get("underruns", 0)
            result.underruns, result.stall_s = listener.underruns, listener.stall_s
            if trigger_at is not None and first_audio is not None:
                result.ttfa_ms = (first_audio - trigger_at) * 1000
    except Exception as exc:  # a failed session is a result, not a crash of the benchmark
        result.errors.append(f"{type(exc).__name__}: {exc}")
    return result


async def _delayed(delay_s: float, session: Coroutine[Any, Any, SessionResult]) -> SessionResult:
    await asyncio.sleep(delay_s)
    return await session


async def run(args: argparse.Namespace) -> dict[str, Any]:
    text = PARAGRAPH * max(1, round(args.seconds / 15))
    async with gateway_process() as gateway:
        url = gateway.url
        started, gateway_cpu = time.monotonic(), gateway.cpu_seconds()
        client_cpu = time.process_time()
        gap = args.ramp_s / max(1, args.sessions - 1)
        results = await asyncio.gather(
            *(_delayed(i * gap, one_session(url, args.backend, text, args.tokens_per_s))
              for i in range(args.sessions))
        )  # fmt: skip
        wall = time.monotonic() - started
        gateway_cpu = gateway.cpu_seconds() - gateway_cpu
        client_cpu = time.process_time() - client_cpu
    ttfa = [r.ttfa_ms for r in results if r.ttfa_ms is not None]
    gaps = [g for r in results for g in r.gaps_ms]
    stalls = [r.stall_s for r in results]
    return {
        "sessions": args.sessions,
        "ramp_s": args.ramp_s,
        "backend": args.backend,
        "cpus": os.cpu_count(),
        "audio_s_per_session": statistics.median(r.audio_s for r in results),
        "wall_s": wall,
        "gateway_cores": gateway_cpu / wall,  # average share of the cores while it ran
        "load_generator_cores": client_cpu / wall,
        "ttfa_ms": {"p50": float(np.percentile(ttfa, 50)) if ttfa else None,
                    "p95": float(np.percentile(ttfa, 95)) if ttfa else None},
        "frame_gap_ms": {"p50": float(np.percentile(gaps, 50)),
                         "p95": float(np.percentile(gaps, 95)), "max": max(gaps)},
        "sessions_with_underruns": sum(1 for r in results if r.underruns),
        "underruns": sum(r.underruns for r in results),
        "stall_s": {"mean": float(np.mean(stalls)), "p50": float(np.percentile(stalls, 50)),
                    "p95": float(np.percentile(stalls, 95)), "max": max(stalls)},
        "stall_s_per_session": [round(stall, 3) for stall in stalls],
        "sessions_told_saturated": sum(1 for r in results if r.saturated_reports),
        "errors": sum(len(r.errors) for r in results),
        "error_samples": [e for r in results for e in r.errors][:5],
        "text_lost_chars": sum(r.text_lost for r in results),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--backend", default="espeak")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per session, about")
    parser.add_argument("--tokens-per-s", type=float, default=30.0)
    parser.add_argument("--ramp-s", type=float, default=5.0,
                        help="sessions start evenly over this long (0: all at once)")  # fmt: skip
    result = asyncio.run(run(parser.parse_args()))
    ttfa, gaps, stall = result["ttfa_ms"], result["frame_gap_ms"], result["stall_s"]
    text = "\n".join(
        [
            f"{result['sessions']} concurrent sessions, backend {result['backend']}, "
            f"{result['cpus']} CPUs, about {result['audio_s_per_session']:.0f} s of audio each, "
            f"starts spread over {result['ramp_s']:g} s",
            "",
            "| measure | value | target |",
            "|---|---|---|",
            f"| time to first audio p50 / p95 | {ttfa['p50']:.0f} / {ttfa['p95']:.0f} ms | |",
            f"| frame gap p50 / p95 / max | {gaps['p50']:.0f} / {gaps['p95']:.0f} / "
            f"{gaps['max']:.0f} ms | p95 < 60 ms |",
            f"| sessions with underruns | {result['sessions_with_underruns']} | |",
            f"| stall time per session, mean / p50 / p95 / max | {stall['mean']:.2f} / "
            f"{stall['p50']:.2f} / {stall['p95']:.2f} / {stall['max']:.2f} s | 0 |",
            f"| sessions told the gateway is saturated | {result['sessions_told_saturated']} | |",
            f"| cores busy: gateway / load generator | {result['gateway_cores']:.2f} / "
            f"{result['load_generator_cores']:.2f} | |",
            f"| errors | {result['errors']} | 0 |",
            f"| characters not spoken | {result['text_lost_chars']} | 0 |",
        ]
    )
    print(text)
    write_results(REPO / "bench" / "results", "load", result, text)


if __name__ == "__main__":
    main()
