"""What the remote-backend path adds, measured on loopback.

    python -m bench.remote_overhead [--runs 10]

Each sentence of a passage is synthesized, alternating, (a) by a backend directly, (b) through
the OpenAI backend talking to the OpenAI-compatible test server over loopback HTTP (the server
runs that same backend), and (c) through the ElevenLabs backend talking to the ElevenLabs test
server over a loopback WebSocket (base64 JSON audio, character alignment -> word timings).
Two backends: the instant tone backend, so the figures are the transport and client cost alone
(milliseconds added), and the real Kokoro model, so they can be set against real synthesis
(ratios remote/direct measured in the same run). A real provider's network is not included.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from gateway.backends.base import Backend, SynthesisRequest
from gateway.backends.elevenlabs import ElevenLabsBackend
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.openai_speech import OpenAIBackend
from gateway.backends.settings import ElevenLabsSettings, KokoroOnnxSettings, OpenAISettings
from tests.fake_elevenlabs import FakeElevenLabs
from tests.fakes import ToneBackend
from tests.openai_compatible_server import openai_compatible_app
from tests.servers import served

SENTENCES = [
    "The old lighthouse stood at the edge of the cliff.",
    "Every evening, the keeper climbed the spiral stairs to light the lamp.",
    "He had done this for nearly forty years.",
    "Visitors sometimes asked whether he felt lonely out there.",
]
Timing = tuple[float, float]  # seconds to the first non-empty chunk, seconds to the end


async def timed(backend: Backend, text: str, voice: str) -> Timing:
    started = time.perf_counter()
    first = None
    async for chunk in backend.synthesize(SynthesisRequest(text, voice, "en-us", 1.0)):
        if first is None and len(chunk.pcm):
            first = time.perf_counter() - started
    return first or float("nan"), time.perf_counter() - started


async def measure(engine: Backend, voice: str, runs: int) -> dict[str, list[Timing]]:
    fake = FakeElevenLabs(engine, api_key="k", voices={"v": voice}, chunk_s=0.2)
    async with (
        served(openai_compatible_app({"engine": engine})) as openai_server,
        served(fake.app()) as eleven_server,
    ):
        openai = OpenAIBackend(
            "openai",
            OpenAISettings(
                base_url=openai_server.url, model="engine", voices=(voice,), default_voice=voice
            ),
        )
        eleven = ElevenLabsBackend(
            "elevenlabs",
            ElevenLabsSettings(
                base_url=eleven_server.url, api_key="k", default_voice="v", list_voices=False
            ),
        )
        await openai.load()
        await eleven.load()
        paths: dict[str, Callable[[str], Awaitable[Timing]]] = {
            "direct": lambda text: timed(engine, text, voice),
            "openai": lambda text: timed(openai, text, voice),
            "elevenlabs": lambda text: timed(eleven, text, "v"),
        }
        results: dict[str, list[Timing]] = {name: [] for name in paths}
        for path in paths.values():  # warm every path once
            await path(SENTENCES[0])
        for _ in range(runs):
            for text in SENTENCES:
                for name, path in paths.items():
                    results[name].append(await path(text))
        await openai.aclose()
        await eleven.aclose()
    return results


def report(title: str, results: dict[str, list[Timing]]) -> None:
    direct_first = statistics.median(r[0] for r in results["direct"])
    direct_total = statistics.median(r[1] for r in results["direct"])
    print(f"\n{title} (medians of {len(results['direct'])} sentences)")
    print(
        f"{'path':<12}{'first chunk ms':>15}{'total ms':>10}{'added first ms':>16}"
        f"{'first/direct':>14}{'total/direct':>14}"
    )
    for name, values in results.items():
        first = statistics.median(v[0] for v in values)
        total = statistics.median(v[1] for v in values)
        print(
            f"{name:<12}{first * 1000:>15.1f}{total * 1000:>10.1f}"
            f"{(first - direct_first) * 1000:>16.1f}"
            f"{first / direct_first:>14.3f}{total / direct_total:>14.3f}"
        )


async def main(runs: int) -> None:
    tone = ToneBackend("tone")
    await tone.load()
    report("tone backend: transport and client cost", await measure(tone, "tone", runs))
    kokoro = KokoroOnnxBackend("kokoro", KokoroOnnxSettings())
    await kokoro.load()
    report("Kokoro: against real synthesis", await measure(kokoro, "jf_gongitsune", runs))
    await kokoro.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(main(parser.parse_args().runs))
