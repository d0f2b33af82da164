"""Streaming resampling from a backend's native rate to the stream rate, in one place.

:class:`StreamResampler` is sans-I/O: one instance per stream, stateful (libsoxr's streaming
resampler), so audio cut into chunks anywhere comes out exactly as if resampled whole: no
clicks at chunk boundaries. :meth:`StreamResampler.flush` ends a piece (a separately
synthesized stretch): it drains the filter's delay line and starts afresh, so the piece's output
length is ``round(n * out_rate / in_rate)`` for ``n`` input samples.

:class:`ResampledChunks` applies it to a backend's :class:`~gateway.core.chunks.AudioChunk`
stream: the PCM is converted, pieces are flushed at ``piece_end`` (and at the end of the
stream), and word timings are scaled to the output rate. A chunk may name its own rate (a WAV
stream's, or a fallback backend's); the stream then continues at that rate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Final

import numpy as np
import soxr
from numpy.typing import NDArray

from gateway.core.chunks import AudioChunk, WordTiming

__all__ = ["ResampledChunks", "StreamResampler"]

QUALITY: Final = "HQ"  # libsoxr "high quality": 20-bit precision, passband to 91 % of Nyquist
_EMPTY: Final = np.zeros(0, dtype=np.float32)


class StreamResampler:
    """Mono float32 from ``in_rate`` to ``out_rate``, chunk by chunk.

    When the rates are equal it passes audio through untouched.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._ratio = Fraction(out_rate, in_rate)
        self._soxr = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=QUALITY)
        )

    @property
    def identity(self) -> bool:
        """True when no resampling is needed."""
        return self._soxr is None

    def push(self, pcm: NDArray[np.float32]) -> NDArray[np.float32]:
        """Resample more audio of the current piece; returns what is ready (may be empty)."""
        pcm = np.ascontiguousarray(pcm, dtype=np.float32)
        if self._soxr is None:
            return pcm
        if not len(pcm):
            return _EMPTY
        return np.asarray(self._soxr.resample_chunk(pcm, last=False), dtype=np.float32)

    def flush(self) -> NDArray[np.float32]:
        """End the piece: return the audio still held in the filter and reset for the next."""
        if self._soxr is None:
            return _EMPTY
        tail = np.asarray(self._soxr.resample_chunk(_EMPTY, last=True), dtype=np.float32)
        self._soxr.clear()
        return tail

    def position(self, sample: int) -> int:
        """A sample position within a piece, converted to the output rate."""
        return round(sample * self._ratio)


class ResampledChunks:
    """A backend's chunk stream converted to ``out_rate``; closing it closes the backend's.

    Words keep their piece-relative positions, scaled by the rate ratio, and stay on the chunk
    they came with (the filter delays audio a little, so a word may come before its audio,
    which :class:`~gateway.core.chunks.AudioChunk` allows). If the backend's stream ends
    without a ``piece_end`` on its last chunk, the held-back tail is returned as one more
    chunk. ``in_rate`` is the rate of chunks that do not name theirs; a chunk with audio at
    another rate ends the open piece's resampling (its tail goes out first) and switches.
    """

    def __init__(self, chunks: AsyncIterator[AudioChunk], in_rate: int, out_rate: int) -> None:
        self._chunks = chunks
        self._out_rate = out_rate
        self._resampler = StreamResampler(in_rate, out_rate)
        self._open_piece = False  # samples pushed since the last flush
        self._finished = False

    def __aiter__(self) -> ResampledChunks:
        return self

    async def __anext__(self) -> AudioChunk:
        if self._finished:
            raise StopAsyncIteration
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            self._finished = True
            if self._open_piece:
                self._open_piece = False
                return AudioChunk(self._resampler.flush())
            raise
        return self.convert(chunk)

    def convert(self, chunk: AudioChunk) -> AudioChunk:
        """Resample one chunk (flushing the piece on ``piece_end``) and scale its words."""
        tail = self._switch(chunk)
        resampler = self._resampler
        if resampler.identity and not len(tail):
            return (
                chunk if chunk.sample_rate is None else dataclasses.replace(chunk, sample_rate=None)
            )
        pcm = resampler.push(chunk.pcm)
        if len(tail):
            pcm = np.concatenate((tail, pcm))
        self._open_piece = not resampler.identity
        if chunk.piece_end is not None:
            pcm = np.concatenate((pcm, resampler.flush()))
            self._open_piece = False
        words = tuple(
            WordTiming(
                w.char_start,
                w.char_end,
                resampler.position(w.sample_start),
                resampler.position(w.sample_end),
                w.spoken,
            )
            for w in chunk.words
        )
        return AudioChunk(pcm, piece_end=chunk.piece_end, words=words)

    def _switch(self, chunk: AudioChunk) -> NDArray[np.float32]:
        """Move to the rate of a chunk with audio at another rate; returns the old filter's
        tail (the end of the audio before it)."""
        rate = chunk.sample_rate
        if rate is None or rate == self._resampler.in_rate or not len(chunk.pcm):
            return _EMPTY
        tail = self._resampler.flush()
        self._resampler = StreamResampler(rate, self._out_rate)
        self._open_piece = False
        return tail

    async def aclose(self) -> None:
        """Close the backend's generator, so a cancelled segment stops its work."""
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()
