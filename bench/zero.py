"""A zero-cost backend, and a gateway process serving it: what the gateway itself costs.

:class:`ZeroCostBackend` answers every request at once with a slice of precomputed audio
(a voiced tone with a syllable-rate envelope, about as long as speech of that text would be) and
native word timings, so whatever time and CPU a session takes beyond it is the gateway's:
segmenting, seams, resampling, Opus, framing, the WebSocket.

    python -m bench.zero --port 8770

serves it as backend ``zero`` (the repository's config.toml for everything else; TTSGW_*
variables apply), for :mod:`bench.overhead`.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import AsyncIterator
from typing import Final

import numpy as np
from numpy.typing import NDArray

from bench.process import REPO
from gateway.backends.base import (
    AudioChunk,
    EngineCounters,
    SynthesisRequest,
    Voice,
    WordTiming,
    listed_voice,
)
from gateway.config import load_config
from gateway.core.alignment import spoken_words
from gateway.core.segmenter import Boundary
from gateway.server.run import gateway_server, uvicorn_config

__all__ = ["NAME", "ZeroCostBackend", "main"]

NAME: Final = "zero"
_RATE: Final = 24000
_SECONDS_PER_CHAR: Final = 0.065  # about 15 characters a second, as speech
_PRECOMPUTED_S: Final = 60.0


def _voice_like(seconds: float, rate: int) -> NDArray[np.float32]:
    """A 140 Hz voice with a few harmonics, its loudness rising and falling four times a
    second, never silent (so the gateway trims nothing inside it)."""
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (0.2 * envelope * voiced).astype(np.float32)


class ZeroCostBackend:
    """Audio and word timings for any text, instantly (one piece per request)."""

    name: str = NAME
    sample_rate: int = _RATE
    languages: tuple[str, ...] = ("en-us",)
    default_voice: str = "zero"
    default_lang: str = "en-us"
    streams_within_segment = False
    native_word_timing = True
    kind: str = "zero"
    model: str | None = None
    max_input_chars: int | None = None
    lanes: int = 1

    def __init__(self) -> None:
        self._audio = _voice_like(_PRECOMPUTED_S, _RATE)
        self._ready = False
        self.counters = EngineCounters()

    @property
    def ready(self) -> bool:
        return self._ready

    async def load(self) -> None:
        """Nothing to load."""
        self._ready = True

    async def aclose(self) -> None:
        """Nothing to release."""
        self._ready = False

    def voices(self) -> list[Voice]:
        """Its one voice."""
        return [Voice("zero", "Zero", "en-us", None)]

    def resolve_voice(self, name: str) -> str:
        """``zero`` only."""
        return listed_voice(self, name)

    async def synthesize(self, request: SynthesisRequest) -> AsyncIterator[AudioChunk]:
        """The text's audio and words in one chunk, without waiting for anything."""
        step = int(_SECONDS_PER_CHAR * _RATE / request.speed)
        words, position = [], 0
        for word in spoken_words(request.text):
            length = (word.char_end - word.char_start + 1) * step
            words.append(WordTiming(word.char_start, word.char_end, position, position + length))
            position += length
        if position == 0:
            return
        audio = (
            self._audio[:position]
            if position <= len(self._audio)
            else (np.resize(self._audio, position))
        )
        yield AudioChunk(audio, piece_end=Boundary.SENTENCE, words=tuple(words))


def main() -> None:
    """Serve the zero-cost backend until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8770)
    args = parser.parse_args()
    config = load_config(REPO / "config.toml")  # TTSGW_* variables apply
    server = dataclasses.replace(config.server, port=args.port)
    config = dataclasses.replace(config, server=server)
    gateway_server(uvicorn_config(config, backends={NAME: ZeroCostBackend()})).run()


if __name__ == "__main__":
    main()
