"""Time to first byte and total time: the REST endpoint against a WebSocket session, with Kokoro.

    python -m bench.rest [--runs 5]

One process serves the real Kokoro backend on loopback and, for two texts (two sentences, and a
178-word passage), alternates: ``POST /v1/audio/speech`` (MP3 and raw PCM, streamed) and a
``/v1/stream`` session that sends the whole text and ``end`` (Opus, the default). Both paths
speak through the same pipeline, so the differences are the edges: container encoding and HTTP
chunks against Opus frames in msgpack. Time to first byte is from sending the request (or the
text) to the first audio bytes at the client; total time is to the end of the body (or ``done``).

WebSocket sessions are paced to the listener (``limits.max_buffer_ahead_s``, 8 s ahead of the
modelled playback), REST responses are not, so on the long passage the session's total time
follows the audio's duration. To compare the work itself, the sessions also run on a second
gateway with pacing out of the way (``max_buffer_ahead_s`` = 3600 s), sharing the same model.

Prints a table with medians and the REST/WebSocket ratios measured in this one run, and writes
bench/results/rest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from bench.first_audio import PASSAGE
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.settings import KokoroOnnxSettings
from gateway.config import Config, load_config
from gateway.core.protocol import Audio, Done
from gateway.server.run import BackgroundServer, serve_in_background
from tts_gateway_client import connect

REPO = Path(__file__).resolve().parent.parent
TEXTS = {
    "short": "The old lighthouse stood at the edge of the cliff. Every evening, the keeper "
    "climbed the spiral stairs to light the lamp.",
    "passage": PASSAGE,
}
Timing = tuple[float, float]  # seconds to the first audio bytes, seconds to the end


async def rest(url: str, text: str, fmt: str) -> Timing:
    body = {"model": "kokoro", "input": text, "response_format": fmt}
    async with httpx.AsyncClient(timeout=300) as http:
        started = time.perf_counter()
        first = None
        async with http.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
            response.raise_for_status()
            async for chunk in response.aiter_raw():
                if first is None and chunk:
                    first = time.perf_counter() - started
        return first or float("nan"), time.perf_counter() - started


async def session(url: str, text: str) -> Timing:
    async with connect(url) as stream:
        started = time.perf_counter()
        stream.feed([text])
        first = None
        async for message in stream:
            if isinstance(message, Audio) and first is None:
                first = time.perf_counter() - started
            elif isinstance(message, Done):
                break
        return first or float("nan"), time.perf_counter() - started


def config_for(base: Config, *, buffer_ahead_s: float | None = None) -> Config:
    server = dataclasses.replace(base.server, port=0, log_level="warning")
    limits = base.limits
    if buffer_ahead_s is not None:
        limits = dataclasses.replace(limits, max_buffer_ahead_s=buffer_ahead_s)
    return dataclasses.replace(base, server=server, limits=limits)


async def main(runs: int) -> dict[str, dict[str, dict[str, float]]]:
    base = load_config(REPO / "config.toml", environ={})
    kokoro = KokoroOnnxBackend("kokoro", KokoroOnnxSettings())
    await kokoro.load()
    paced: BackgroundServer = await serve_in_background(
        config_for(base), backends={"kokoro": kokoro}
    )
    unpaced = await serve_in_background(
        config_for(base, buffer_ahead_s=3600.0), backends={"kokoro": kokoro}
    )
    http_url = f"http://127.0.0.1:{paced.port}"
    paths: dict[str, Callable[[str], Awaitable[Timing]]] = {
        "REST mp3": lambda text: rest(http_url, text, "mp3"),
        "REST pcm": lambda text: rest(http_url, text, "pcm"),
        "WebSocket opus": lambda text: session(f"ws://127.0.0.1:{paced.port}/v1/stream", text),
        "WebSocket opus, unpaced": lambda text: session(
            f"ws://127.0.0.1:{unpaced.port}/v1/stream", text
        ),
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        for warm_up in paths.values():  # every path once
            await warm_up(TEXTS["short"])
        for name, text in TEXTS.items():
            timings: dict[str, list[Timing]] = {path: [] for path in paths}
            for _ in range(runs):
                for path, run in paths.items():  # alternating, so load drifts hit all alike
                    timings[path].append(await run(text))
            results[name] = {
                path: {
                    "first_byte_ms": statistics.median(t[0] for t in values) * 1000,
                    "total_ms": statistics.median(t[1] for t in values) * 1000,
                }
                for path, values in timings.items()
            }
    finally:
        await unpaced.stop()
        await paced.stop()
    return results


def report(results: dict[str, dict[str, dict[str, float]]], runs: int) -> None:
    print(f"medians of {runs} runs each, alternating; Kokoro int8 ONNX on this machine")
    header = ("text", "path", "first byte", "total", "ratio fb", "ratio total")
    print("{:8} {:26} {:>11} {:>10} {:>9} {:>12}".format(*header))
    for name, paths in results.items():
        reference = paths["WebSocket opus"]
        for path, figures in paths.items():
            fb = figures["first_byte_ms"] / reference["first_byte_ms"]
            total = figures["total_ms"] / reference["total_ms"]
            first, whole = figures["first_byte_ms"], figures["total_ms"]
            print(f"{name:8} {path:26} {first:8.0f} ms {whole:7.0f} ms {fb:9.2f} {total:12.2f}")
    print("ratios: against the WebSocket session (paced, the default) for the same text")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    measured = asyncio.run(main(args.runs))
    report(measured, args.runs)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "rest.json").write_text(json.dumps({"runs": args.runs, "results": measured}, indent=2))
