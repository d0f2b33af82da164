"""What the ElevenLabs-compatible edge adds to the time to first audio, against ``/v1/stream``.

    python -m bench.elevenlabs_edge [--runs 30] [--backend zero]

One gateway process (``python -m bench.zero``: the repository's config.toml serving the
zero-cost backend, :mod:`bench.zero`; or the real server for ``--backend kokoro``), one backend,
one sentence, both edges, in one run: sessions
alternate between the two edges, so a change in the machine's load hits both alike. Every
session is opened first; then the clock starts, the whole sentence goes out with a flush, and it
stops when the first audio message arrives at the client:

- ``/v1/stream``: ``text`` then ``flush`` (``pcm16`` at 24 kHz), up to the first ``audio``;
- ``multi-stream-input``: the context's opening ``" "``, then the text with ``flush: true``
  (``pcm_24000``), up to the first JSON audio message (base64 and character alignment).

With the zero-cost backend the difference is the edge's own cost (JSON and base64, the alignment,
the writer task); the target is at most 5 ms at the median. ``--backend kokoro`` shows it beside
real synthesis (there the difference drowns in the model's variation).

Prints a table and writes bench/results/elevenlabs_edge.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any, Final

from websockets.asyncio.client import connect as ws_connect

from bench.process import GATEWAY_COMMAND, GatewayProcess, gateway_process
from bench.report import Target, fmt, markdown_table, summary, write_results
from gateway.core.protocol import Audio
from tts_gateway_client import connect

__all__ = ["EDGE_TARGET_MS", "compare_edges", "report", "target"]

EDGE_TARGET_MS: Final = 5.0
SENTENCE: Final = "The kettle clicked off, and for a moment the kitchen was perfectly quiet."
ZERO_COMMAND: Final = ("-m", "bench.zero")
_VOICES: Final = {"zero": "zero", "kokoro": "jm_kumo", "piper": "en_US-joe-medium"}


async def stream_ttfa_ms(url: str, backend: str, text: str) -> float:
    """``/v1/stream``: from sending the text to the first audio frame, in ms."""
    async with connect(url, backend=backend, format="pcm16") as stream:
        started = time.perf_counter()
        await stream.send_text(text)
        await stream.flush()
        async for message in stream:
            if isinstance(message, Audio):
                return (time.perf_counter() - started) * 1000
    raise RuntimeError("/v1/stream: the session ended without audio")


async def elevenlabs_ttfa_ms(port: int, backend: str, text: str) -> float:
    """``multi-stream-input``: from sending the text to the first audio message, in ms."""
    url = (f"ws://127.0.0.1:{port}/v1/text-to-speech/{_VOICES.get(backend, backend)}"
           f"/multi-stream-input?model_id={backend}&output_format=pcm_24000")  # fmt: skip
    async with ws_connect(url, max_size=2**24, compression=None) as socket:
        await socket.send(json.dumps({"text": " ", "context_id": "c"}))
        started = time.perf_counter()
        await socket.send(json.dumps({"text": text, "context_id": "c", "flush": True}))
        async for frame in socket:
            if json.loads(frame).get("audio"):
                return (time.perf_counter() - started) * 1000
    raise RuntimeError("multi-stream-input: the socket closed without audio")


async def compare_edges(
    gateway: GatewayProcess, *, backend: str, runs: int, text: str = SENTENCE
) -> dict[str, Any]:
    """Alternating sessions on both edges (one of each first, not measured); the time to first
    audio of each, and what the ElevenLabs edge adds at the median."""
    await stream_ttfa_ms(gateway.url, backend, text)
    await elevenlabs_ttfa_ms(gateway.port, backend, text)
    stream_ms, xi_ms = [], []
    for _ in range(runs):
        stream_ms.append(await stream_ttfa_ms(gateway.url, backend, text))
        xi_ms.append(await elevenlabs_ttfa_ms(gateway.port, backend, text))
    return {
        "backend": backend,
        "stream_ttfa_ms": summary(stream_ms),
        "elevenlabs_ttfa_ms": summary(xi_ms),
        "added_ms": statistics.median(xi_ms) - statistics.median(stream_ms),
    }


def target(result: dict[str, Any]) -> Target:
    """The issue's target: the compatible edge adds at most 5 ms at the median."""
    name = f"ElevenLabs edge: added time to first audio, median ms ({result['backend']})"
    return Target(name, result["added_ms"], "<=", EDGE_TARGET_MS)


def report(result: dict[str, Any]) -> str:
    """The two edges side by side, as a markdown table."""
    rows = [
        (edge, fmt(f["median"], 2), fmt(f["p95"], 2), fmt(f["min"], 2), f["n"])
        for edge, f in (
            ("/v1/stream (pcm16)", result["stream_ttfa_ms"]),
            ("multi-stream-input (pcm_24000)", result["elevenlabs_ttfa_ms"]),
        )
    ]
    table = markdown_table(["edge", "median, ms", "p95, ms", "min, ms", "runs"], rows)
    return (
        f"{table}\n\nBackend `{result['backend']}`; the ElevenLabs edge adds "
        f"{fmt(result['added_ms'], 2)} ms at the median (target: at most {EDGE_TARGET_MS:g} ms)."
    )


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    command = ZERO_COMMAND if args.backend == "zero" else GATEWAY_COMMAND
    async with gateway_process(command) as gateway:
        return await compare_edges(gateway, backend=args.backend, runs=args.runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="sessions per edge")
    parser.add_argument("--backend", default="zero", help="zero (the edge's own cost) or kokoro")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    result = asyncio.run(_main(args))
    result["targets"] = [target(result).as_dict()]
    text = report(result)
    print(text)
    write_results(args.out, "elevenlabs_edge", result, text)


if __name__ == "__main__":
    main()
