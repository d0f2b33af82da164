"""Streaming resampling: length, frequency, chunking invariance, seamless chunk boundaries."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from gateway.audio.resample import ResampledChunks, StreamResampler
from gateway.backends.base import AudioChunk, WordTiming
from gateway.core.segmenter import Boundary

IN_RATE, OUT_RATE = 22050, 24000


def sine(frequency: float, seconds: float, rate: int = IN_RATE) -> NDArray[np.float32]:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def resample_in_chunks(pcm: NDArray[np.float32], sizes: list[int]) -> NDArray[np.float32]:
    resampler = StreamResampler(IN_RATE, OUT_RATE)
    out, start = [], 0
    for size in sizes:
        out.append(resampler.push(pcm[start : start + size]))
        start += size
    out.append(resampler.push(pcm[start:]))
    out.append(resampler.flush())
    return np.concatenate(out)


def dominant_frequency(pcm: NDArray[np.float32], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[np.argmax(spectrum)])


def test_sine_keeps_its_frequency_and_duration() -> None:
    pcm = sine(440.0, 1.0)
    out = resample_in_chunks(pcm, [1000] * 20)
    assert len(out) == OUT_RATE  # one second in, one second out
    assert dominant_frequency(out, OUT_RATE) == pytest.approx(440.0, abs=1.0)
    middle = out[2400:-2400]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3000), max_size=30))
def test_chunked_equals_whole(sizes: list[int]) -> None:
    pcm = sine(523.0, 1.5)
    whole = resample_in_chunks(pcm, [])
    chunked = resample_in_chunks(pcm, sizes)
    assert len(chunked) == len(whole) == round(len(pcm) * OUT_RATE / IN_RATE)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_no_click_at_chunk_boundaries() -> None:
    frequency, amplitude = 1000.0, 0.5
    out = resample_in_chunks(sine(frequency, 1.0), [7, 1, 500, 333, 2048, 1, 1, 4096])
    # A sine never moves faster than 2*pi*f*A per second; a click would.
    steepest = 2 * np.pi * frequency * amplitude / OUT_RATE
    interior = out[240:-240]  # the ends of a piece are the signal's own onset and cut
    assert np.max(np.abs(np.diff(interior))) < steepest * 1.05


def test_each_piece_is_resampled_on_its_own() -> None:
    first, second = sine(300.0, 0.3), sine(700.0, 0.2)
    resampler = StreamResampler(IN_RATE, OUT_RATE)
    one = np.concatenate((resampler.push(first), resampler.flush()))
    two = np.concatenate((resampler.push(second[:1000]), resampler.push(second[1000:])))
    two = np.concatenate((two, resampler.flush()))
    assert len(one) == round(len(first) * OUT_RATE / IN_RATE)
    assert len(two) == round(len(second) * OUT_RATE / IN_RATE)
    alone = StreamResampler(IN_RATE, OUT_RATE)
    np.testing.assert_allclose(two, np.concatenate((alone.push(second), alone.flush())), atol=1e-6)


def test_equal_rates_pass_through() -> None:
    resampler = StreamResampler(24000, 24000)
    pcm = sine(440.0, 0.1, 24000)
    assert resampler.identity
    assert resampler.push(pcm) is pcm
    assert len(resampler.flush()) == 0
    assert resampler.position(1234) == 1234


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="sample rates must be positive"):
        StreamResampler(0, 24000)


class _Chunks:
    """A backend's stream that records whether it was closed."""

    def __init__(self, chunks: list[AudioChunk]) -> None:
        self.closed = False
        self._gen = self._run(chunks)

    async def _run(self, chunks: list[AudioChunk]) -> AsyncGenerator[AudioChunk, None]:
        try:
            for chunk in chunks:
                yield chunk
        finally:
            self.closed = True

    def __aiter__(self) -> AsyncIterator[AudioChunk]:
        return self._gen

    async def __anext__(self) -> AudioChunk:
        return await anext(self._gen)

    async def aclose(self) -> None:
        await self._gen.aclose()


async def test_chunks_pieces_and_words_are_converted() -> None:
    piece = sine(440.0, 0.5)
    word = WordTiming(0, 5, 2205, 11025, spoken="hello")
    backend = _Chunks(
        [
            AudioChunk(piece[:3000], words=(word,)),
            AudioChunk(piece[3000:], piece_end=Boundary.SENTENCE),
            AudioChunk(piece[:2205]),  # the last piece has no piece_end: flushed at the end
        ]
    )
    out = [chunk async for chunk in ResampledChunks(backend, IN_RATE, OUT_RATE)]
    assert out[0].words == (WordTiming(0, 5, 2400, 12000, spoken="hello"),)
    assert out[1].piece_end is Boundary.SENTENCE
    assert len(out[0].pcm) + len(out[1].pcm) == round(len(piece) * OUT_RATE / IN_RATE)
    assert [c.piece_end for c in out[2:]] == [None] * len(out[2:])
    assert sum(len(c.pcm) for c in out[2:]) == 2400
    assert backend.closed


async def test_closing_closes_the_backend_stream() -> None:
    backend = _Chunks([AudioChunk(sine(440.0, 0.1)) for _ in range(5)])
    stream = ResampledChunks(backend, IN_RATE, OUT_RATE)
    await anext(stream)
    await stream.aclose()
    assert backend.closed
