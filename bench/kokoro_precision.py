"""Kokoro's model variant, measured: the int8 model as shipped against the same weights
dequantized to float32 at load, whole passes and windowed decoding.

Part of the ONNX Runtime tuning (``python -m bench.suite --parts tuning``). Four ways to speak
the same text, interleaved round by round so that each sees the same background load:

- ``whole int8``: the shipped model, each pass in one inference (``windowed = false``);
- ``whole fp32``: the same graph with every quantized Conv/MatMul/LSTM rewritten to float32
  (:func:`gateway.backends.kokoro_graphs.dequantize`), each pass in one inference;
- ``windowed int8`` / ``windowed fp32``: the gateway's default path, the front once per pass
  and the generator window by window, with the int8 generator or its dequantized copy
  (``window_precision``).

For each: CPU seconds per second of audio (this process's CPU: every thread) and wall time
over audio (RTF), medians over the rounds. The faster windowed variant should be config.toml's
``window_precision``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from bench.report import fmt, markdown_table
from gateway.backends.base import SynthesisRequest
from gateway.backends.kokoro_graphs import dequantize, inference_session, save_atomically
from gateway.backends.kokoro_onnx import KokoroOnnxBackend, _cache_dir, resolve_model
from gateway.backends.settings import KokoroOnnxSettings

__all__ = ["precision_figures", "report"]

VARIANTS: Final = ("whole int8", "whole fp32", "windowed int8", "windowed fp32")


async def precision_figures(text: str, *, reps: int) -> dict[str, Any]:
    """Measure the four variants on ``text`` (see the module docstring)."""
    backends = {
        "whole int8": KokoroOnnxBackend("k", KokoroOnnxSettings(windowed=False, warmup=False)),
        "windowed int8": KokoroOnnxBackend("k", KokoroOnnxSettings(warmup=False)),
        "windowed fp32": KokoroOnnxBackend(
            "k", KokoroOnnxSettings(window_precision="fp32", warmup=False)
        ),
    }
    for backend in backends.values():
        await backend.load()
    fp32_whole = await asyncio.to_thread(_whole_fp32_session)
    speakers: dict[str, Callable[[], Awaitable[int]]] = {
        name: _speaker(backend, text) for name, backend in backends.items()
    }
    speakers["whole fp32"] = _swapped(backends["whole int8"], fp32_whole, text)
    figures: dict[str, dict[str, list[float]]] = {v: {"cpu": [], "rtf": []} for v in VARIANTS}
    try:
        for name in VARIANTS:  # one round unmeasured: caches, lazy allocations
            await speakers[name]()
        for _ in range(reps):
            for name in VARIANTS:
                cpu, wall = time.process_time(), time.perf_counter()
                audio_s = await speakers[name]() / 24000
                figures[name]["cpu"].append((time.process_time() - cpu) / audio_s)
                figures[name]["rtf"].append((time.perf_counter() - wall) / audio_s)
    finally:
        for backend in backends.values():
            await backend.aclose()
    return {
        name: {
            "cpu_per_audio_s": statistics.median(values["cpu"]),
            "rtf": statistics.median(values["rtf"]),
        }
        for name, values in figures.items()
    }


def _speaker(backend: KokoroOnnxBackend, text: str) -> Callable[[], Awaitable[int]]:
    async def speak() -> int:
        request = SynthesisRequest(text, backend.default_voice, "en-us", 1.0)
        return sum([len(chunk.pcm) async for chunk in backend.synthesize(request)])

    return speak


def _swapped(backend: KokoroOnnxBackend, session: Any, text: str) -> Callable[[], Awaitable[int]]:
    """``backend`` (whole passes) speaking with another session of the whole model."""
    speak = _speaker(backend, text)

    async def with_session() -> int:
        shipped = dict(backend._sessions)
        backend._sessions = dict.fromkeys(shipped, session)
        try:
            return await speak()
        finally:
            backend._sessions = shipped

    return with_session


def _whole_fp32_session() -> Any:
    """The whole shipped model dequantized to float32 (built once, cached)."""
    import onnx

    settings = KokoroOnnxSettings()
    model = resolve_model(settings)
    target = _cache_dir(settings) / f"fp32-whole-{model.name}"
    if not target.is_file():
        save_atomically(target, dequantize(onnx.load(str(model))))
    return inference_session(Path(target), os.cpu_count() or 1)


def report(result: dict[str, Any]) -> str:
    """The four variants as a markdown table, and which windowed one is faster."""
    rows = [(name, fmt(r["cpu_per_audio_s"], 3), fmt(r["rtf"], 3)) for name, r in result.items()]
    table = markdown_table(["variant", "CPU s per audio s", "RTF (wall)"], rows)
    faster = min(("windowed int8", "windowed fp32"), key=lambda v: result[v]["cpu_per_audio_s"])
    return f"{table}\n\nFaster windowed generator (CPU): {faster}."
