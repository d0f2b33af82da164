"""Per backend: load time, time to first audio and real-time factor, on loopback.

    python -m bench.backends [--runs 5] [--tokens-per-s 40] [--backends kokoro,piper,espeak]

The backends are those of config.toml (TTSGW_* variables apply), served by one in-process
gateway. For each, every run opens a session and feeds a 200-word passage (:data:`PASSAGE`)
as simulated LLM tokens. Time to first audio is measured at the client, from sending the token
that completed the first segment to receiving its first audio frame. The real-time factor is
synthesis time over audio time: as the gateway reports it for the session
(``done.metrics.real_time_factor``), and for the passage's segments synthesized directly by the
backend, without the gateway.

Kinds this benchmark does not measure, and why:

- ``kokoro_torch`` and ``chatterbox``: no package ships their weights, and the stand-in models
  the tests use run as fast as their configured sleeps, so their figures would say nothing about
  the engines. ``python -m bench.kokoro_torch`` measures Kokoro's real PyTorch architecture with
  random weights (the ``torch`` extra); Chatterbox cannot be installed here (``chatterbox-tts``
  pins a torch build that is not available).
- ``openai``, ``alltalk``, ``elevenlabs``: their speed is the provider's (its network and
  service). The loopback test servers synthesize with Kokoro, so they would report Kokoro's
  figures under another name; ``python -m bench.remote_overhead`` measures what the remote path
  itself adds (loopback HTTP or WebSocket, decoding, alignment), against direct synthesis.

Prints a table and writes bench/results/backends.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import time
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from bench.report import summary, write_results
from gateway.backends import Backend, create_backend
from gateway.backends.base import SynthesisRequest
from gateway.config import Config, load_config
from gateway.core.protocol import Audio, Done, SegmentStart
from gateway.core.segmenter import Segmenter
from gateway.server.run import serve_in_background
from tts_gateway_client import ClientError, connect
from tts_gateway_client.say import completing_send, simulated_llm

REPO = Path(__file__).resolve().parent.parent
# 200 words (the issue's benchmark length), read as a story: sentences and clauses of mixed
# length, as an LLM's answer would have them.
PASSAGE = (
    "The morning train left the valley station at a quarter past six, carrying farmers, "
    "students, and a few tired nurses home from the night shift. Outside, the fields were still "
    "silver with frost, and thin columns of smoke rose from the chimneys of the scattered "
    "houses. Maria sat by the window with a notebook on her knees. She was writing a letter to "
    "her brother, who had moved to the coast three years earlier and rarely called. She told him "
    "about the new bridge over the river, the bakery that had finally reopened, and the old dog "
    "that still waited at the gate every evening. She did not mention the hospital, or the long "
    "conversations with the doctor, or the tests that would come back next week. There would be "
    "time for that later, she decided, when she knew more. The train slowed as it climbed toward "
    "the pass, and the conductor walked through the carriages calling out the names of the small "
    "villages ahead. Fresh snow appeared on the higher slopes. Maria closed the notebook, looked "
    "at the mountains, and smiled for the first time that day. Whatever the news, she thought, "
    "the view would still be here tomorrow."
)
assert len(PASSAGE.split()) == 200


class SessionFailed(RuntimeError):
    """A session closed without what a measurement needs."""


async def one_session(
    url: str, backend: str, tokens_per_s: float, text: str = PASSAGE
) -> dict[str, Any]:
    """``text`` through one session of ``backend``; the client-side measurements."""
    async with connect(url, backend=backend) as stream:
        stream.feed(simulated_llm(text, tokens_per_s))
        first_segment: SegmentStart | None = None
        first_audio: float | None = None
        done: Done | None = None
        async for message in stream:
            if isinstance(message, Audio) and first_audio is None:
                first_audio = time.monotonic()
            elif isinstance(message, SegmentStart) and first_segment is None:
                first_segment = message
            elif isinstance(message, Done):
                done = message
        trigger = None if first_segment is None else completing_send(stream.sent, first_segment)
        if first_segment is None or first_audio is None or done is None or trigger is None:
            raise SessionFailed(
                f"{backend}: the session ended without audio, a first segment or done "
                f"(close code {stream.close_code}: {stream.close_reason or 'no reason'})"
            )
        return {
            "ttfa_ms": (first_audio - trigger.at) * 1000,
            "first_segment_chars": first_segment.char_end - first_segment.char_start,
            "real_time_factor": done.metrics["real_time_factor"],
            "audio_ms": done.metrics["audio_ms"],
        }


async def session_figures(
    url: str, backend: str, *, runs: int, tokens_per_s: float, text: str = PASSAGE
) -> dict[str, Any]:
    """Time to first audio (every run's, and their summary) and the gateway's real-time factor
    over ``runs`` sessions, after one session that is not measured. A session that fails is
    counted and reported, not measured; if all fail, the last failure is raised."""
    await one_session(url, backend, tokens_per_s, text)
    sessions, failures = [], []
    for _ in range(runs):
        try:
            sessions.append(await one_session(url, backend, tokens_per_s, text))
        except (SessionFailed, ClientError, ConnectionClosed) as error:
            failures.append(str(error))
    if not sessions:
        raise SessionFailed(f"{backend}: every session failed; the last: {failures[-1]}")
    ttfa = [s["ttfa_ms"] for s in sessions]
    rtf = [s["real_time_factor"] for s in sessions]
    return {
        "ttfa_ms": summary(ttfa),
        "ttfa_ms_runs": ttfa,
        "first_segment_chars": sessions[0]["first_segment_chars"],
        "session_rtf": {"median": statistics.median(rtf), "max": max(rtf)},
        "audio_s": statistics.median(s["audio_ms"] for s in sessions) / 1000,
        "failed": len(failures),
        "failures": failures[:3],
    }


async def direct(backend: Backend, text: str = PASSAGE) -> dict[str, float]:
    """``text``'s segments synthesized by the backend alone: wall and CPU time over audio.

    CPU time is this process's (every thread), so nothing else should run in it meanwhile."""
    segmenter = Segmenter()
    segments = [s for s in segmenter.push(text) + segmenter.finish() if not s.blank]
    samples = 0
    first_chunk_s: float | None = None
    started, cpu_started = time.perf_counter(), time.process_time()
    for segment in segments:
        request = SynthesisRequest(segment.text, backend.default_voice, backend.default_lang, 1.0)
        async for chunk in backend.synthesize(request):
            if first_chunk_s is None:
                first_chunk_s = time.perf_counter() - started
            samples += len(chunk.pcm)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    audio_s = samples / backend.sample_rate
    return {
        "synthesis_s": elapsed,
        "audio_s": audio_s,
        "real_time_factor": elapsed / audio_s,
        "cpu_per_audio_s": cpu / audio_s,
        "first_chunk_ms": (first_chunk_s or 0.0) * 1000,
    }


async def direct_figures(backend: Backend, *, reps: int, text: str = PASSAGE) -> dict[str, float]:
    """Medians of ``reps`` direct syntheses of ``text`` (see :func:`direct`)."""
    alone = [await direct(backend, text) for _ in range(reps)]
    return {
        "direct_rtf": statistics.median(a["real_time_factor"] for a in alone),
        "direct_cpu_per_audio_s": statistics.median(a["cpu_per_audio_s"] for a in alone),
        "direct_first_chunk_ms": statistics.median(a["first_chunk_ms"] for a in alone),
        "direct_audio_s": statistics.median(a["audio_s"] for a in alone),
    }


async def load_backends(
    config: Config, names: list[str]
) -> tuple[dict[str, Backend], dict[str, float]]:
    """The named backends of ``config``, loaded and warmed up, and the seconds each took."""
    unknown = [name for name in names if name not in config.backends]
    if unknown:
        raise SystemExit(f"not configured in config.toml: {', '.join(unknown)}")
    backends: dict[str, Backend] = {}
    loads: dict[str, float] = {}
    for name in names:
        backend = create_backend(name, config.backends[name])
        started = time.perf_counter()
        await backend.load()
        loads[name] = time.perf_counter() - started
        backends[name] = backend
    return backends, loads


async def run(args: argparse.Namespace) -> dict[str, Any]:
    config = load_config(REPO / "config.toml")
    names = args.backends.split(",")
    backends, loads = await load_backends(config, names)
    quiet = dataclasses.replace(config.server, port=0, log_level="warning")
    session = dataclasses.replace(config.session, default_backend=names[0])
    server = await serve_in_background(
        dataclasses.replace(config, server=quiet, session=session), backends=backends
    )
    url = f"ws://127.0.0.1:{server.port}/v1/stream"
    results: dict[str, Any] = {}
    try:
        for name, backend in backends.items():
            figures = await session_figures(url, name, runs=args.runs,
                                            tokens_per_s=args.tokens_per_s)  # fmt: skip
            results[name] = {
                "kind": config.backends[name].kind,
                "native_rate": backend.sample_rate,
                "load_s": loads[name],
                **figures,
                **await direct_figures(backend, reps=args.direct_reps),
            }
    finally:
        await server.stop()
        for backend in backends.values():
            await backend.aclose()
    return {
        "machine": {"cpus": os.cpu_count()},
        "runs": args.runs,
        "tokens_per_s": args.tokens_per_s,
        "passage_words": len(PASSAGE.split()),
        "backends": results,
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['machine']['cpus']} CPUs, {result['runs']} sessions per backend of a "
        f"{result['passage_words']}-word passage at {result['tokens_per_s']} tokens/s",
        "",
        "| backend | rate | load + warm-up | first audio, median | p95 | RTF in sessions | "
        "RTF direct | passage audio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["backends"].items():
        lines.append(
            f"| {name} ({r['kind']}) | {r['native_rate']} Hz | {r['load_s']:.2f} s "
            f"| {r['ttfa_ms']['median']:.0f} ms | {r['ttfa_ms']['p95']:.0f} ms "
            f"| {r['session_rtf']['median']:.3f} | {r['direct_rtf']:.4f} | {r['audio_s']:.1f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens-per-s", type=float, default=40.0)
    parser.add_argument("--direct-reps", type=int, default=3)
    parser.add_argument("--backends", default="kokoro,piper,espeak")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = report(result)
    print(text)
    write_results(REPO / "bench" / "results", "backends", result, text)


if __name__ == "__main__":
    main()
