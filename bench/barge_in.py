"""Barge-in with the listener far behind: how soon `cancelled` answers a `cancel`, and how many
audio frames arrive in between, when the client holds the full 8 s the pacing allows.

    python -m bench.barge_in [--rounds 20] [--backends espeak,piper]

Starts the gateway in its own process (the repository's config.toml), opens one session per
backend and repeats: send a long text, wait until `progress` reports the pacing limit reached,
send `cancel`, time `cancelled` and count the frames before it. Targets (docs/protocol.md,
section 7): `cancelled` within 20 ms, at most one frame after the cancel. Prints a table and
writes bench/results/barge_in.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from bench.process import gateway_process
from bench.report import Target, markdown_table, percentile, write_results

REPO = Path(__file__).resolve().parent.parent
STORY = " ".join(
    ["The lighthouse keeper climbed the stairs again, counting every step on the way up."] * 12
)
TARGET_MS = 20.0
_READ_TIMEOUT_S = 60.0
TARGET_FRAMES = 1


async def _message(socket: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(_READ_TIMEOUT_S):
        body: dict[str, Any] = msgpack.unpackb(await socket.recv())
    return body


async def caught_up(socket: ClientConnection) -> None:
    """Read what has already arrived (until nothing comes for 5 ms), so that the frames counted
    after the cancel are those sent after it, not ones this client was late to read."""
    while True:
        try:
            async with asyncio.timeout(0.005):
                await socket.recv()
        except TimeoutError:
            return


async def one_round(socket: ClientConnection, limit_ms: float) -> tuple[float, int]:
    """Fill the listener's buffer, cancel; the time to `cancelled` (ms) and the frames before it."""
    await socket.send(msgpack.packb({"type": "text", "text": STORY}))
    await socket.send(msgpack.packb({"type": "flush"}))
    while True:
        message = await _message(socket)
        if message["type"] == "progress" and message["audio_buffered_ms"] >= limit_ms - 500:
            break
    await caught_up(socket)
    sent = time.perf_counter()
    await socket.send(msgpack.packb({"type": "cancel"}))
    frames = 0
    while (message := await _message(socket))["type"] != "cancelled":
        frames += message["type"] == "audio"
    return (time.perf_counter() - sent) * 1000, frames


async def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    async with gateway_process() as gateway:
        for backend in args.backends.split(","):
            async with ws_connect(gateway.url, compression=None, max_size=None) as socket:
                await socket.send(msgpack.packb({"type": "start", "backend": backend}))
                assert (await _message(socket))["type"] == "ready"
                rounds = [await one_round(socket, 8000.0) for _ in range(args.rounds)]
            latency = [ms for ms, _ in rounds]
            frames = [count for _, count in rounds]
            figures[backend] = {
                "cancelled_ms": {"p50": percentile(latency, 50), "p95": percentile(latency, 95),
                                 "max": max(latency)},
                "frames_after_cancel": {"p50": percentile(frames, 50), "max": max(frames)},
                "rounds": args.rounds,
            }  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backends", default="espeak,piper")
    figures = asyncio.run(run(parser.parse_args()))
    rows = []
    for backend, found in figures.items():
        latency, frames = found["cancelled_ms"], found["frames_after_cancel"]
        on_time = Target("cancelled p95 (ms)", latency["p95"], "<=", TARGET_MS)
        few = Target("frames after cancel, max", frames["max"], "<=", TARGET_FRAMES)
        found["targets"] = [on_time.as_dict(), few.as_dict()]
        rows.append([backend, f"{latency['p50']:.1f} / {latency['p95']:.1f} / "
                     f"{latency['max']:.1f} ms", _verdict(on_time), f"{frames['p50']:g} / "
                     f"{frames['max']:g}", _verdict(few)])  # fmt: skip
    text = markdown_table(
        ["backend", "cancel -> cancelled p50 / p95 / max", "target", "frames between p50 / max",
         "target"], rows,
    )  # fmt: skip
    print(text)
    write_results(REPO / "bench" / "results", "barge_in", figures, text)


def _verdict(target: Target) -> str:
    return f"{target.op} {target.limit:g}: " + ("met" if target.met else "missed")


if __name__ == "__main__":
    main()
