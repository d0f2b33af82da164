"""Backends for fault injection and fast protocol tests (the real ones are tested too).

``ToneBackend`` speaks each word as a short tone, deterministically and fast, and can be told
to fail: raise after some chunks, or hang, for the segments whose text contains a marker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from gateway.backends.base import (
    AudioChunk,
    BackendError,
    EngineCounters,
    SynthesisRequest,
    Voice,
    listed_voice,
)
from gateway.core.segmenter import Boundary

RAISE_MARKER = "FAILNOW"
HANG_MARKER = "HANGNOW"


class ToneBackend:
    """One 120 ms tone per word, in chunks of 40 ms, each word a separate piece."""

    kind = "fake"
    model: str | None = None
    sample_rate: int = 24000
    languages: tuple[str, ...] = ("en-us",)
    streams_within_segment = True
    native_word_timing = False
    max_input_chars: int | None = None
    lanes = 1
    default_voice = "tone"
    default_lang = "en-us"

    def __init__(
        self,
        name: str = "fake",
        *,
        chunk_delay_s: float = 0.0,
        load_gate: asyncio.Event | None = None,
        load_error: Exception | None = None,
    ) -> None:
        self.name = name
        self.chunk_delay_s = chunk_delay_s
        self.load_gate = load_gate
        self.load_error = load_error
        self.loaded = False
        self.active = 0  # synthesize() calls currently running
        self.requests: list[SynthesisRequest] = []
        self.counters = EngineCounters()

    @property
    def ready(self) -> bool:
        return self.loaded

    async def load(self) -> None:
        if self.load_gate is not None:
            await self.load_gate.wait()
        if self.load_error is not None:
            raise self.load_error
        self.loaded = True

    async def aclose(self) -> None:
        self.loaded = False

    def voices(self) -> list[Voice]:
        return [Voice("tone", "Tone", "en-us", None), Voice("tone2", "Tone 2", "en-us", None)]

    def resolve_voice(self, name: str) -> str:
        return listed_voice(self, name)

    async def synthesize(self, request: SynthesisRequest) -> AsyncIterator[AudioChunk]:
        self.requests.append(request)
        self.active += 1
        try:
            words = request.text.split()
            for index, word in enumerate(words):
                if word.strip(".,!?") == HANG_MARKER:
                    await asyncio.Event().wait()
                tone = self._tone(440 + 40 * (index % 5))
                for part in np.array_split(tone, 3):
                    if self.chunk_delay_s:
                        await asyncio.sleep(self.chunk_delay_s)
                    if word.strip(".,!?") == RAISE_MARKER:
                        raise BackendError("injected failure")
                    yield AudioChunk(part.astype(np.float32))
                yield AudioChunk(np.zeros(240, np.float32), piece_end=Boundary.WORD)
        finally:
            self.active -= 1

    def _tone(self, frequency: float) -> np.ndarray:
        t = np.arange(int(0.12 * self.sample_rate)) / self.sample_rate
        return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
