"""Memory per session: the gateway process's resident memory (VmRSS) before and after opening
sessions, idle (started, no text) and active (speaking).

The gateway runs in its own process, so its RSS is its own. RSS moves in pages and the
allocators keep what they took, so the figures are deltas over several sessions at once, in a
fixed order: idle sessions first, then (once they are closed) the active ones against the RSS
left after the idle ones. One active session of the same text runs first, unmeasured, so the
model's buffers for those input lengths are already allocated.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bench.load import one_session
from bench.process import GatewayProcess
from bench.report import fmt, markdown_table
from tts_gateway_client import SpeechStream, connect

__all__ = ["memory_per_session", "report"]

_SETTLE_S = 0.5
_SAMPLE_EVERY_S = 0.05


async def _idle_rss(gateway: GatewayProcess, backend: str, sessions: int) -> int:
    """The RSS with ``sessions`` sessions started and waiting for text."""
    async with contextlib.AsyncExitStack() as stack:
        streams: list[SpeechStream] = []
        for _ in range(sessions):
            streams.append(await stack.enter_async_context(connect(gateway.url, backend=backend)))
        await asyncio.sleep(_SETTLE_S)
        return gateway.rss_bytes()


async def _peak_rss(gateway: GatewayProcess, done: asyncio.Event) -> int:
    peak = gateway.rss_bytes()
    while not done.is_set():
        peak = max(peak, gateway.rss_bytes())
        await asyncio.sleep(_SAMPLE_EVERY_S)
    return peak


async def _active_peak(
    gateway: GatewayProcess, backend: str, sessions: int, text: str, tokens_per_s: float
) -> tuple[int, int]:
    """The peak RSS while ``sessions`` sessions speak ``text``, and how many had errors."""
    done = asyncio.Event()
    sampler = asyncio.create_task(_peak_rss(gateway, done))
    try:
        results = await asyncio.gather(
            *(one_session(gateway.url, backend, text, tokens_per_s) for _ in range(sessions))
        )
    finally:
        done.set()
    return await sampler, sum(1 for r in results if r.errors)


async def memory_per_session(
    gateway: GatewayProcess,
    *,
    backend: str,
    idle: int,
    active: int,
    text: str,
    tokens_per_s: float = 40.0,
) -> dict[str, Any]:
    """RSS deltas per idle and per active session on ``gateway`` (see the module docstring)."""
    await one_session(gateway.url, backend, text, tokens_per_s)  # warm the model's buffers
    await asyncio.sleep(_SETTLE_S)
    baseline = gateway.rss_bytes()
    with_idle = await _idle_rss(gateway, backend, idle)
    await asyncio.sleep(_SETTLE_S)
    before_active = gateway.rss_bytes()
    peak, failed = await _active_peak(gateway, backend, active, text, tokens_per_s)
    return {
        "backend": backend,
        "baseline_mib": baseline / 2**20,
        "idle_sessions": idle,
        "idle_kib_per_session": (with_idle - baseline) / idle / 1024,
        "active_sessions": active,
        "active_kib_per_session": (peak - before_active) / active / 1024,
        "active_failed": failed,
    }


def report(result: dict[str, Any]) -> str:
    """Memory per session as a markdown table."""
    rows = [
        ("gateway RSS before sessions", fmt(result["baseline_mib"], 0, "MiB")),
        (
            f"per idle session ({result['idle_sessions']} open)",
            fmt(result["idle_kib_per_session"], 0, "KiB"),
        ),
        (
            f"per active {result['backend']} session ({result['active_sessions']} speaking)",
            fmt(result["active_kib_per_session"], 0, "KiB"),
        ),
    ]
    return markdown_table(["measure", "value"], rows)
