"""Replicas behind HAProxy (issue 16): what the balancer adds, what replicas buy on one
machine, and what a ``/metrics`` scrape costs.

    python -m bench.cluster [--runs 20] [--quick]      (or: python -m bench.suite --parts cluster)

1. ``haproxy``: median time to first audio of an espeak session, direct to a replica and through
   HAProxy (deploy/haproxy.cfg) to the same replica, interleaved in one run: from sending a
   complete sentence on a ready session to its first audio frame, and from opening the socket to
   that frame (the upgrade crosses the balancer too).
2. ``replicas``: espeak sessions held without underrun by 1 replica and by 3 replicas behind
   HAProxy on the same cores: at each level, that many sessions speak a passage (about 25 s of
   speech) at once; a level is held when no session reports an underrun (``done.metrics``);
   levels go on until most sessions of one run dry. The replicas' CPU seconds at each level.
3. ``metrics``: ``GET /metrics`` with 100 open sessions: median latency and the replica's CPU per
   scrape.

The processes are the test suite's (tests/cluster.py): real replicas, HAProxy and Redis on
loopback. The load average is reported beside the figures (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import httpx
import msgpack
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from bench.procstat import cpu_seconds
from bench.report import fmt, markdown_table
from tests.cluster import balancer, cluster, replica

__all__ = ["measure", "report"]

SENTENCE: Final = "The balancer passes this sentence along."
# About 25 s of speech: sessions overlap well past the 8 s each is sent ahead of its listener.
PASSAGE: Final = (
    "Every listener hears this passage at its own pace, while the replicas share the work. "
    "A second sentence keeps the session busy for a while longer, and then a third one follows. "
    "The scheduler gives each call a deadline: the moment its listener would run out of audio. "
    "When too many sessions share too few cores, those deadlines slip and listeners wait. "
    "This last sentence ends the passage."
)
_OPEN_ENV: Final = {"TTSGW_LIMITS__MAX_SESSIONS": "512", "TTSGW_SERVER__LOG_LEVEL": "warning"}


@contextlib.asynccontextmanager
async def _ready(url: str) -> AsyncIterator[ClientConnection]:
    async with ws_connect(url, compression=None, open_timeout=30, max_queue=None) as ws:
        await ws.send(msgpack.packb({"type": "start"}))
        assert msgpack.unpackb(await ws.recv())["type"] == "ready"
        yield ws


async def _first_audio(url: str) -> tuple[float, float]:
    """(sentence sent -> first audio, socket opened -> first audio), in ms."""
    opened = time.perf_counter()
    async with _ready(url) as ws:
        sent = time.perf_counter()
        await ws.send(msgpack.packb({"type": "text", "text": SENTENCE}))
        await ws.send(msgpack.packb({"type": "end"}))
        while msgpack.unpackb(await ws.recv())["type"] != "audio":
            pass
        now = time.perf_counter()
        async for _ in ws:  # to `done`
            pass
    return (now - sent) * 1000, (now - opened) * 1000


async def _haproxy_part(tmp: Path, runs: int) -> dict[str, Any]:
    async with (
        replica(tmp, "gw1", env=_OPEN_ENV) as gw,
        balancer(tmp, [gw]) as front,
    ):
        for url in (gw.ws_url, front.ws_url):  # warm both paths
            await _first_audio(url)
        direct, through = [], []
        for _ in range(runs):
            direct.append(await _first_audio(gw.ws_url))
            through.append(await _first_audio(front.ws_url))
    figures: dict[str, Any] = {"runs": runs}
    for name, samples in (("direct", direct), ("haproxy", through)):
        figures[f"{name}_ttfa_ms"] = statistics.median(s[0] for s in samples)
        figures[f"{name}_open_to_audio_ms"] = statistics.median(s[1] for s in samples)
    figures["added_ttfa_ms"] = figures["haproxy_ttfa_ms"] - figures["direct_ttfa_ms"]
    figures["added_open_to_audio_ms"] = (
        figures["haproxy_open_to_audio_ms"] - figures["direct_open_to_audio_ms"]
    )
    return figures


async def _speak_passage(url: str) -> int:
    """One session speaks the passage; its underruns (from ``done``)."""
    async with _ready(url) as ws:
        await ws.send(msgpack.packb({"type": "text", "text": PASSAGE}))
        await ws.send(msgpack.packb({"type": "end"}))
        underruns = 0
        async for frame in ws:
            message = msgpack.unpackb(frame)
            if message["type"] == "done":
                underruns = int(message["metrics"].get("underruns", 0))
    return underruns


async def _levels(url: str, pids: list[int], levels: list[int]) -> list[dict[str, Any]]:
    rows = []
    for count in levels:
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        started = time.monotonic()
        results = await asyncio.gather(
            *(_speak_passage(url) for _ in range(count)), return_exceptions=True
        )
        failed = sum(1 for r in results if isinstance(r, BaseException))
        underrun = sum(1 for r in results if isinstance(r, int) and r > 0)
        rows.append({
            "sessions": count,
            "with_underrun": underrun,
            "failed": failed,
            "cpu_s": sum(cpu_seconds(pid) for pid in pids) - cpu_before,
            "wall_s": time.monotonic() - started,
        })  # fmt: skip
        if 2 * (underrun + failed) > count:  # most run dry: higher levels say nothing more
            break
    return rows


def _held(rows: list[dict[str, Any]]) -> int:
    clean = [r["sessions"] for r in rows if not r["with_underrun"] and not r["failed"]]
    return max(clean, default=0)


async def _replicas_part(tmp: Path, levels: list[int]) -> dict[str, Any]:
    async with replica(tmp / "one", "solo", env=_OPEN_ENV) as solo:
        one = await _levels(solo.ws_url, [solo.process.pid], levels)
    async with cluster(tmp / "three", replicas=3, env=_OPEN_ENV) as three:
        pids = [r.process.pid for r in three.replicas]
        many = await _levels(three.balancer.ws_url, pids, levels)
    return {"one": one, "three": many, "held_one": _held(one), "held_three": _held(many)}


async def _metrics_part(tmp: Path, sessions: int, scrapes: int) -> dict[str, Any]:
    async with replica(tmp, "scraped", env=_OPEN_ENV) as gw, contextlib.AsyncExitStack() as held:
        for _ in range(sessions):
            await held.enter_async_context(_ready(gw.ws_url))
        async with httpx.AsyncClient() as http:
            await http.get(f"{gw.http_url}/metrics")
            latencies = []
            cpu_before = cpu_seconds(gw.process.pid)
            for _ in range(scrapes):
                started = time.perf_counter()
                answer = await http.get(f"{gw.http_url}/metrics")
                latencies.append((time.perf_counter() - started) * 1000)
            cpu_after = cpu_seconds(gw.process.pid)
    return {
        "sessions": sessions,
        "scrapes": scrapes,
        "median_ms": statistics.median(latencies),
        "cpu_ms_per_scrape": (cpu_after - cpu_before) * 1000 / scrapes,
        "bytes": len(answer.content),
    }


async def measure(*, runs: int = 20, quick: bool = False) -> dict[str, Any]:
    """Every part's figures (``quick``: fewer runs and levels)."""
    levels = [1, 5] if quick else [1, 2, 5, 10, 20, 40, 80]
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        tmp = Path(scratch)
        for sub in ("haproxy", "one", "three", "metrics"):
            (tmp / sub).mkdir()
        result: dict[str, Any] = {
            "haproxy": await _haproxy_part(tmp / "haproxy", 5 if quick else runs),
            "replicas": await _replicas_part(tmp, levels),
            "metrics": await _metrics_part(tmp / "metrics", 100, 20 if quick else 100),
        }
    result["load_average"] = list(os.getloadavg())
    return result


def report(result: dict[str, Any]) -> str:
    """The figures as markdown tables."""
    h, m, r = result["haproxy"], result["metrics"], result["replicas"]
    lines = [
        markdown_table(
            ["espeak, median of " + str(h["runs"]), "direct", "through HAProxy", "added"],
            [
                [
                    "sentence -> first audio (ms)",
                    fmt(h["direct_ttfa_ms"], 1),
                    fmt(h["haproxy_ttfa_ms"], 1),
                    fmt(h["added_ttfa_ms"], 2),
                ],
                [
                    "socket opened -> first audio (ms)",
                    fmt(h["direct_open_to_audio_ms"], 1),
                    fmt(h["haproxy_open_to_audio_ms"], 1),
                    fmt(h["added_open_to_audio_ms"], 2),
                ],
            ],
        ),
        "",
        markdown_table(
            ["replicas", "sessions", "with underrun", "failed", "replica CPU s", "wall s"],
            [
                [
                    name,
                    row["sessions"],
                    row["with_underrun"],
                    row["failed"],
                    fmt(row["cpu_s"], 1),
                    fmt(row["wall_s"], 1),
                ]
                for name in ("one", "three")
                for row in r[name]
            ],
        ),
        "",
        f"Held without underrun: {r['held_one']} sessions by 1 replica, {r['held_three']} by 3.",
        "",
        f"`GET /metrics` with {m['sessions']} open sessions: median {fmt(m['median_ms'], 2)} ms, "
        f"{fmt(m['cpu_ms_per_scrape'], 2)} ms of replica CPU per scrape, {m['bytes']} bytes.",
        "",
        "Load average: " + ", ".join(f"{v:.2f}" for v in result["load_average"]) + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = asyncio.run(measure(runs=args.runs, quick=args.quick))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
