"""Saturation (issue 19, item 15): when the gateway cannot keep its listeners supplied, `progress`
and `/healthz` say so, from the gateway's one verdict (``Gateway.saturated``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import httpx

from gateway.core.load import LoadMonitor
from gateway.core.protocol import Progress
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.fakes import ToneBackend
from tests.streams import collect
from tts_gateway_client import connect

WORDS = " ".join(["one two three four five."] * 8)


def test_the_monitor_counts_recent_speakers_and_stalls() -> None:
    monitor = LoadMonitor(recent_s=5.0)
    for session in range(8):
        monitor.frame(session, 100.0, stalled=False)
    monitor.frame(0, 101.0, stalled=True)
    load = monitor.load(102.0)
    assert (load.speaking, load.stalled) == (8, 1)
    monitor.frame(1, 104.0, stalled=True)
    assert monitor.load(104.0).stalled == 2
    # Five seconds on, only what happened since counts (ended sessions drop out).
    assert (monitor.load(105.5).speaking, monitor.load(105.5).stalled) == (2, 2)
    assert (monitor.load(120.0).speaking, monitor.load(120.0).stalled) == (0, 0)


@contextlib.asynccontextmanager
async def engine(chunk_delay_s: float) -> AsyncIterator[RunningServer]:
    """A gateway whose engine makes 40 ms of audio every ``chunk_delay_s``."""
    running = await serve(
        repo_config(), {"kokoro": ToneBackend("kokoro", chunk_delay_s=chunk_delay_s)}
    )
    try:
        yield running
    finally:
        await running.stop()


async def health(running: RunningServer) -> dict[str, object]:
    async with httpx.AsyncClient() as http:
        body: dict[str, object] = (await http.get(f"{running.http_url}/healthz")).json()
    return body


async def test_a_gateway_slower_than_real_time_says_it_is_saturated() -> None:
    # An engine at half real time: listeners run dry.
    async with engine(chunk_delay_s=0.08) as running, connect(running.ws_url) as stream:
        stream.feed([WORDS])
        transcript = await collect(stream, deadline_s=timeout(60))
        reported = await health(running)  # within the window after the session's stalls
    saturated = [p.saturated for p in transcript.of(Progress)]
    assert saturated[0] is False  # not before the first stall
    assert any(saturated)
    assert reported["saturated"] is True
    assert reported["status"] == "ok"  # still serving: saturation is reported, not refused


async def test_a_gateway_that_keeps_up_is_not_saturated() -> None:
    async with engine(chunk_delay_s=0.0) as running, connect(running.ws_url) as stream:
        stream.feed([WORDS])
        transcript = await collect(stream, deadline_s=timeout(60))
        reported = await health(running)
    assert not any(p.saturated for p in transcript.of(Progress))
    assert reported["saturated"] is False
    assert transcript.done is not None
    assert transcript.done.metrics["underruns"] == 0


async def test_the_verdict_needs_a_share_of_the_speakers() -> None:
    async with engine(chunk_delay_s=0.0) as running:
        load = running.gateway.speech.load
        at = time.monotonic()  # the gateway's clock
        for session in range(8):
            load.frame(session, at, stalled=False)
        load.frame(0, at, stalled=True)
        assert not running.gateway.saturated()  # one in eight
        load.frame(1, at, stalled=True)
        assert running.gateway.saturated()  # a quarter
