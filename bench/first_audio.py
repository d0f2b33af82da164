"""Time to first audio and real-time factor with the real Kokoro model, on loopback.

    python -m bench.first_audio [--runs 20] [--tokens-per-s 40] [--url ws://...]

Each run opens a session and feeds a 178-word passage as simulated LLM tokens. Time to first
audio is measured at the client, from sending the token that completed the first segment to
receiving its first audio frame. The gateway's overhead is measured as a ratio in the same
run: the passage's segments synthesized by the backend directly, versus the same text sent
through a gateway at once (alternating, medians of several repetitions); that gateway does not
pace the audio to a listener nor join or split segments, so both run the same model calls.

Prints a table and writes bench/results/first_audio.json.
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

import numpy as np

from bench.report import percentile, write_results
from gateway.audio.codecs import OpusEncoder, OpusOptions
from gateway.audio.framing import AudioOut
from gateway.backends.base import SynthesisRequest
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.settings import KokoroOnnxSettings
from gateway.config import Config, load_config
from gateway.core.protocol import Audio, Done, SegmentStart
from gateway.core.segmenter import Segmenter
from gateway.server.run import serve_in_background
from tts_gateway_client import connect
from tts_gateway_client.say import completing_send, simulated_llm

PASSAGE = (
    "The old lighthouse stood at the edge of the cliff, its white paint peeling after decades "
    "of wind and salt. Every evening, the keeper climbed the spiral stairs, one hundred and "
    "twelve steps in all, to light the lamp that guided ships past the rocks. He had done this "
    "for nearly forty years, and in all that time only one vessel had run aground on his watch. "
    "That night still troubled him. The fog had rolled in faster than anyone expected, thick "
    "and grey, swallowing the beam before it could reach the water. He remembered the sound of "
    "the hull scraping stone, the shouts of the crew, and the long hours until dawn. Since then, "
    "he had added a second lamp, a brass horn, and a habit of checking the barometer every hour. "
    "Visitors sometimes asked whether he felt lonely out there. He would smile and point to the "
    "gulls, the seals on the lower rocks, and the endless traffic of ships on the horizon. "
    "Lonely, he said, was not the word. Busy was closer to the truth."
)
REPO = Path(__file__).resolve().parent.parent


async def one_session(url: str, tokens_per_s: float | None) -> dict[str, Any]:
    """Run the passage through one session; returns the client-side measurements."""
    async with connect(url) as stream:
        started = time.monotonic()
        if tokens_per_s:
            stream.feed(simulated_llm(PASSAGE, tokens_per_s))
        else:
            stream.feed([PASSAGE])
        first_segment: SegmentStart | None = None
        first_audio = last_audio = None
        frames = 0
        done: Done | None = None
        async for message in stream:
            now = time.monotonic()
            if isinstance(message, Audio):
                first_audio = first_audio or now
                last_audio = now
                frames += 1
            elif isinstance(message, SegmentStart) and first_segment is None:
                first_segment = message
            elif isinstance(message, Done):
                done = message
        assert first_segment is not None
        assert first_audio is not None
        assert done is not None
        trigger = completing_send(stream.sent, first_segment)
        assert trigger is not None
        audio_s = frames * stream.ready.frame_samples / stream.ready.sample_rate
        return {
            "ttfa_ms": (first_audio - trigger.at) * 1000,
            "first_segment_chars": first_segment.char_end - first_segment.char_start,
            "wall_s": (last_audio or now) - started,
            "audio_s": audio_s,
            "server": done.metrics,
        }


async def direct_synthesis_s(backend: KokoroOnnxBackend) -> float:
    """The passage's segments synthesized by the backend alone (no gateway)."""
    segmenter = Segmenter()
    segments = segmenter.push(PASSAGE) + segmenter.finish()
    started = time.perf_counter()
    for segment in segments:
        if segment.blank:
            continue
        request = SynthesisRequest(segment.text, backend.default_voice, "en-us", 1.0)
        async for _ in backend.synthesize(request):
            pass
    return time.perf_counter() - started


async def through_gateway_s(url: str) -> float:
    started = time.perf_counter()
    await one_session(url, None)
    return time.perf_counter() - started


def opus_cost(seconds: float = 30.0) -> float:
    """CPU seconds to encode one second of audio (one stream, default settings)."""
    rng = np.random.default_rng(0)
    pcm = (0.1 * rng.standard_normal(int(seconds * 24000))).astype(np.float32)
    out = AudioOut(OpusEncoder(OpusOptions()))
    started = time.process_time()
    for start in range(0, len(pcm), 2400):
        out.write(pcm[start : start + 2400])
    out.drain()
    return (time.process_time() - started) / seconds


async def run(args: argparse.Namespace) -> dict[str, Any]:
    config: Config = load_config(REPO / "config.toml")  # TTSGW_* variables apply
    settings_kokoro = config.backends["kokoro"]
    assert isinstance(settings_kokoro, KokoroOnnxSettings)
    backend = KokoroOnnxBackend("kokoro", settings_kokoro)
    await backend.load()
    quiet = dataclasses.replace(config.server, port=0, log_level="warning")
    server = await serve_in_background(
        dataclasses.replace(config, server=quiet), backends={"kokoro": backend}
    )
    # The overhead is compared on the same calls as direct synthesis: no pacing to a listener
    # (the session would last as long as its audio) and no adaptive joining or splitting.
    unpaced = dataclasses.replace(
        config,
        server=quiet,
        limits=dataclasses.replace(config.limits, max_buffer_ahead_s=3600.0),
        session=dataclasses.replace(config.session, adaptive_chunking=False),
    )
    overhead_server = await serve_in_background(unpaced, backends={"kokoro": backend})
    url = args.url or f"ws://127.0.0.1:{server.port}/v1/stream"
    unpaced_url = f"ws://127.0.0.1:{overhead_server.port}/v1/stream"
    try:
        sessions = [await one_session(url, args.tokens_per_s) for _ in range(args.runs)]
        direct, gateway = [], []
        for _ in range(args.overhead_reps):
            direct.append(await direct_synthesis_s(backend))
            gateway.append(await through_gateway_s(unpaced_url))
    finally:
        await server.stop()
        await overhead_server.stop()
    ttfa = [s["ttfa_ms"] for s in sessions]
    rtf = [s["server"]["real_time_factor"] for s in sessions]
    direct_s, gateway_s = statistics.median(direct), statistics.median(gateway)
    return {
        "machine": {"cpus": os.cpu_count(), "backend": "kokoro_onnx int8, 2 threads"},
        "runs": args.runs,
        "tokens_per_s": args.tokens_per_s,
        "passage_words": len(PASSAGE.split()),
        "ttfa_ms": {"median": statistics.median(ttfa), "p95": percentile(ttfa, 95),
                    "min": min(ttfa), "max": max(ttfa)},
        "first_segment_chars": sessions[0]["first_segment_chars"],
        "synthesis_rtf": {"median": statistics.median(rtf), "max": max(rtf)},
        "delivery_wall_over_audio": statistics.median(s["wall_s"] / s["audio_s"]
                                                      for s in sessions),
        "overhead": {
            "direct_s": direct,
            "gateway_s": gateway,
            "ratio": gateway_s / direct_s - 1,
        },
        "opus_cpu_per_audio_s": opus_cost(),
    }  # fmt: skip


def report(result: dict[str, Any]) -> str:
    ttfa, overhead = result["ttfa_ms"], result["overhead"]
    rows = [
        ("time to first audio, median", f"{ttfa['median']:.0f} ms", "<= 700 ms"),
        ("time to first audio, p95", f"{ttfa['p95']:.0f} ms", ""),
        ("synthesis real-time factor, median", f"{result['synthesis_rtf']['median']:.3f}", ""),
        ("wall / audio while streaming tokens", f"{result['delivery_wall_over_audio']:.2f}", ""),
        ("gateway overhead vs direct synthesis", f"{overhead['ratio'] * 100:+.1f} %", "<= 5 %"),
        ("Opus encoding CPU per audio second", f"{result['opus_cpu_per_audio_s'] * 1000:.1f} ms",
         ""),
    ]  # fmt: skip
    lines = [
        f"Kokoro int8 ONNX, {result['machine']['cpus']} CPUs, {result['runs']} sessions of a "
        f"{result['passage_words']}-word passage at {result['tokens_per_s']} tokens/s",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        *(f"| {name} | {value} | {target} |" for name, value, target in rows),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tokens-per-s", type=float, default=40.0)
    parser.add_argument("--overhead-reps", type=int, default=3)
    parser.add_argument("--url", help="measure a running gateway instead of an in-process one")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = report(result)
    print(text)
    write_results(REPO / "bench" / "results", "first_audio", result, text)


if __name__ == "__main__":
    main()
