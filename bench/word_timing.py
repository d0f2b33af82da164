"""What word timing costs Kokoro: the same segments synthesized with and without it.

    python -m bench.word_timing [--reps 5]

"With" exposes the model's phoneme durations (a patched graph) and phonemizes every word alone
to align phonemes with words; "without" runs the original graph and phonemizes the text only.
The two run alternately, in one process, over the segments of the 200-word passage of
bench/first_audio.py; the figure is the ratio of the medians. Prints a table and writes
bench/results/word_timing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from bench.first_audio import PASSAGE
from bench.report import write_results
from gateway.backends.base import SynthesisRequest
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.settings import KokoroOnnxSettings
from gateway.core.segmenter import Segmenter

REPO = Path(__file__).resolve().parent.parent


async def synthesize(backend: KokoroOnnxBackend, text: str) -> tuple[float, float]:
    """Wall and process CPU seconds to synthesize ``text``."""
    wall, cpu = time.perf_counter(), time.process_time()
    request = SynthesisRequest(text, backend.default_voice, "en-us", 1.0)
    async for _ in backend.synthesize(request):
        pass
    return time.perf_counter() - wall, time.process_time() - cpu


async def run(reps: int) -> dict[str, Any]:
    segmenter = Segmenter()
    segments = [s.text for s in segmenter.push(PASSAGE) + segmenter.finish() if not s.blank]
    timed = KokoroOnnxBackend("timed", KokoroOnnxSettings())
    plain = KokoroOnnxBackend("plain", dataclasses.replace(KokoroOnnxSettings(), word_timing=False))
    for backend in (timed, plain):
        await backend.load()
    assert timed.native_word_timing
    assert not plain.native_word_timing
    totals = {"with": [0.0, 0.0], "without": [0.0, 0.0]}
    for rep in range(reps):
        for text in segments:  # interleaved, so load changes hit both alike
            order = [("with", timed), ("without", plain)]
            for name, backend in order if rep % 2 else order[::-1]:
                wall, cpu = await synthesize(backend, text)
                totals[name][0] += wall
                totals[name][1] += cpu
    for backend in (timed, plain):
        await backend.aclose()
    return {
        "segments": len(segments),
        "reps": reps,
        "wall_s": {name: value[0] for name, value in totals.items()},
        "cpu_s": {name: value[1] for name, value in totals.items()},
        "extra_wall": totals["with"][0] / totals["without"][0] - 1,
        "extra_cpu": totals["with"][1] / totals["without"][1] - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    result = asyncio.run(run(parser.parse_args().reps))
    cpu, wall = result["cpu_s"], result["wall_s"]
    text = "\n".join(
        [
            f"Kokoro word timing cost over {result['segments']} segments x {result['reps']} reps",
            "",
            "| measure | without | with | extra | target |",
            "|---|---|---|---|---|",
            f"| CPU time | {cpu['without']:.2f} s | {cpu['with']:.2f} s | "
            f"{result['extra_cpu'] * 100:+.1f} % | <= 3 % |",
            f"| wall time | {wall['without']:.2f} s | {wall['with']:.2f} s | "
            f"{result['extra_wall'] * 100:+.1f} % | |",
        ]
    )
    print(text)
    write_results(REPO / "bench" / "results", "word_timing", result, text)


if __name__ == "__main__":
    main()
