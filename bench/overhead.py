"""What the gateway itself costs, measured with the zero-cost backend (:mod:`bench.zero`).

The gateway runs in its own process (``python -m bench.zero``) and the clients in this one, so
CPU time read from /proc is the gateway's alone. Four figures:

- set-up: from opening the WebSocket to ``ready`` at the client, and the gateway's CPU per
  session opened and ended;
- latency added to a frame: time to first audio with a backend that costs nothing (from sending
  the text that completes the first segment to the first audio frame at the client). It is the
  one frame the gateway never holds back on purpose: later frames wait for the listener
  (``limits.max_buffer_ahead_s``), so their arrival says nothing about overhead;
- CPU per frame and per real-time stream: the gateway's CPU seconds over the frames and the
  seconds of audio it streamed to concurrent real-time sessions (a fraction of one core each);
- the ratio of that CPU to a real backend's synthesis CPU per second of audio (the suite takes
  the synthesis figure from :func:`bench.backends.direct`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.backends import one_session as ttfa_session
from bench.load import one_session as realtime_session
from bench.process import GatewayProcess
from bench.report import fmt, markdown_table, summary
from bench.zero import NAME
from tts_gateway_client import connect

__all__ = ["gateway_overhead", "overhead_ratios", "report"]

SENTENCE = "The kettle clicked off, and for a moment the kitchen was perfectly quiet."


async def _setup_s(url: str) -> float:
    """Open a session, time ``ready``, end it and read it to ``done``."""
    started = time.monotonic()
    async with connect(url, backend=NAME) as stream:
        ready = time.monotonic() - started
        await stream.end()
        async for _ in stream:
            pass
    return ready


async def _setup(gateway: GatewayProcess, runs: int) -> dict[str, Any]:
    cpu = gateway.cpu_seconds()
    ready_ms = [await _setup_s(gateway.url) * 1000 for _ in range(runs)]
    return {
        "ready_ms": summary(ready_ms),
        "cpu_ms_per_session": (gateway.cpu_seconds() - cpu) / runs * 1000,
    }


async def _streaming(
    gateway: GatewayProcess, sessions: int, text: str, tokens_per_s: float
) -> dict[str, Any]:
    """``sessions`` concurrent real-time sessions of ``text``: the gateway's CPU per audio
    second and per frame."""
    cpu, started = gateway.cpu_seconds(), time.monotonic()
    results = await asyncio.gather(
        *(realtime_session(gateway.url, NAME, text, tokens_per_s) for _ in range(sessions))
    )
    cpu, wall = gateway.cpu_seconds() - cpu, time.monotonic() - started
    audio_s = sum(r.audio_s for r in results)
    frames = sum(len(r.gaps_ms) + 1 for r in results if r.audio_s)
    return {
        "sessions": sessions,
        "audio_s": audio_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_per_audio_s": cpu / audio_s if audio_s else float("nan"),
        "cpu_us_per_frame": cpu / frames * 1e6 if frames else float("nan"),
        "errors": sum(len(r.errors) for r in results),
    }


async def gateway_overhead(
    gateway: GatewayProcess,
    *,
    runs: int,
    streams: int,
    text: str,
    tokens_per_s: float = 40.0,
) -> dict[str, Any]:
    """The four figures of the module docstring, on a gateway serving :mod:`bench.zero`."""
    setup = await _setup(gateway, runs)
    await ttfa_session(gateway.url, NAME, tokens_per_s, SENTENCE)  # not measured
    first = [await ttfa_session(gateway.url, NAME, tokens_per_s, SENTENCE) for _ in range(runs)]
    return {
        "setup": setup,
        "first_frame_ms": summary([f["ttfa_ms"] for f in first]),
        "streaming": await _streaming(gateway, streams, text, tokens_per_s),
    }


def overhead_ratios(gateway_cpu: float, synthesis_cpu: dict[str, float]) -> dict[str, float]:
    """The gateway's CPU per audio second as a fraction of each backend's synthesis CPU per
    audio second."""
    return {name: gateway_cpu / cpu for name, cpu in synthesis_cpu.items() if cpu > 0}


def report(result: dict[str, Any]) -> str:
    """The overhead as a markdown table."""
    setup, first, stream = result["setup"], result["first_frame_ms"], result["streaming"]
    rows = [
        (
            "session set-up, connect to ready (median / p95)",
            f"{fmt(setup['ready_ms']['median'], 1)} / {fmt(setup['ready_ms']['p95'], 1)} ms",
        ),
        ("gateway CPU per session (set-up and end)", fmt(setup["cpu_ms_per_session"], 2, "ms")),
        (
            "latency added to the first frame (median / p95)",
            f"{fmt(first['median'], 1)} / {fmt(first['p95'], 1)} ms",
        ),
        ("gateway CPU per 20 ms frame", fmt(stream["cpu_us_per_frame"], 0, "µs")),
        (
            "gateway CPU per real-time stream",
            f"{fmt(stream['cpu_per_audio_s'] * 100, 2)} % of a core "
            f"({stream['sessions']} sessions, {stream['audio_s']:.0f} s of audio)",
        ),
    ]
    for name, ratio in result.get("ratio_to_synthesis", {}).items():
        rows.append((f"gateway CPU / {name} synthesis CPU", f"{ratio * 100:.2f} %"))
    return markdown_table(["measure", "value"], rows)
