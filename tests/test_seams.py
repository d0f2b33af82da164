"""Seam shaping: backend silence trimmed to a natural pause, edges faded, stream-safe."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.backends.base import SynthesisRequest
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.core.seams import SeamConfig, SeamShaper
from gateway.core.segmenter import Boundary

RATE = 24000
CONFIG = SeamConfig()


def ms(value: float) -> int:
    return round(value * RATE / 1000)


def padded_tone(lead_ms: float, tone_ms: float, tail_ms: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(ms(tone_ms)) / RATE
    tone = (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 1e-5, ms(lead_ms) + ms(tail_ms)).astype(np.float32)
    return np.concatenate([noise[: ms(lead_ms)], tone, noise[ms(lead_ms) :]])


def shape(pieces: list[tuple[list[np.ndarray], Boundary]]) -> np.ndarray:
    shaper = SeamShaper(CONFIG)
    out = []
    for chunks, boundary in pieces:
        out += [shaper.push(chunk).pcm for chunk in chunks]
        out.append(shaper.end_piece(boundary).pcm)
    return np.concatenate(out)


def test_backend_padding_becomes_lead_speech_decay_and_pause() -> None:
    piece = padded_tone(300, 500, 600)
    out = shape([([piece], Boundary.SENTENCE)])
    expected = ms(15) + ms(500) + ms(30) + ms(CONFIG.sentence_pause_ms)
    assert abs(len(out) - expected) <= ms(10)  # the analysis works in 10 ms frames
    audible = np.flatnonzero(np.abs(out) > 0.01)
    assert ms(10) <= audible[0] <= ms(20)  # the lead kept before the sound
    tone = piece[ms(300) : ms(800)]
    start = int(audible[0]) - int(np.flatnonzero(np.abs(tone) > 0.01)[0])
    assert np.array_equal(out[start + ms(5) : start + ms(495)], tone[ms(5) : ms(495)])
    assert not out[-ms(CONFIG.sentence_pause_ms) :].any()  # the pause is true silence


@pytest.mark.parametrize(
    ("boundary", "pause_ms"),
    [
        (Boundary.SENTENCE, CONFIG.sentence_pause_ms),
        (Boundary.LINE, CONFIG.line_pause_ms),
        (Boundary.CLAUSE, CONFIG.clause_pause_ms),
        (Boundary.WORD, CONFIG.word_pause_ms),
        (Boundary.HARD, CONFIG.word_pause_ms),
    ],
)
def test_pause_length_follows_the_boundary(boundary: Boundary, pause_ms: float) -> None:
    out = shape([([padded_tone(100, 200, 400)], boundary)])
    last_audible = int(np.flatnonzero(np.abs(out) > 1e-3)[-1])
    silence = len(out) - last_audible
    assert ms(pause_ms) <= silence <= ms(pause_ms) + ms(40)


def test_edges_are_faded_so_no_step_reaches_the_encoder() -> None:
    # A tone that starts and stops at full level, the worst case for a click.
    t = np.arange(ms(200)) / RATE
    hard = (0.5 * np.cos(2 * np.pi * 200 * t)).astype(np.float32)
    out = shape([([hard], Boundary.CLAUSE), ([hard], Boundary.SENTENCE)])
    jumps = np.abs(np.diff(out))
    inner = np.abs(np.diff(hard)).max()
    assert jumps.max() <= inner * 1.01  # no step larger than the signal's own slope
    assert out[0] == 0.0


def test_a_silent_piece_is_only_its_pause() -> None:
    out = shape([([np.zeros(ms(500), np.float32)], Boundary.CLAUSE)])
    assert len(out) == ms(CONFIG.clause_pause_ms)
    assert not out.any()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=12))
def test_chunking_does_not_change_the_output(sizes: list[int]) -> None:
    piece = padded_tone(250, 700, 500)
    bounds = np.cumsum([0, *sizes])
    chunks = [piece[a:b] for a, b in itertools.pairwise(bounds)]
    chunks.append(piece[bounds[-1] :])
    assert np.array_equal(
        shape([(chunks, Boundary.SENTENCE)]), shape([([piece], Boundary.SENTENCE)])
    )


def test_speech_is_released_as_it_arrives() -> None:
    shaper = SeamShaper(CONFIG)
    piece = padded_tone(300, 1000, 300)
    first = shaper.push(piece[: ms(600)]).pcm  # 300 ms of silence, then 300 ms of tone
    assert ms(280) <= len(first) <= ms(320)  # lead + the tone so far; nothing held but <10 ms


@pytest.mark.model
async def test_kokoro_padding_is_trimmed(kokoro: KokoroOnnxBackend) -> None:
    request = SynthesisRequest("Hello there.", "jf_gongitsune", "en-us", 1.0)
    raw = np.concatenate([chunk.pcm async for chunk in kokoro.synthesize(request)])
    out = shape([([raw], Boundary.SENTENCE)])
    threshold = 10 ** (CONFIG.silence_db / 20)
    raw_lead = np.flatnonzero(np.abs(raw) > threshold)[0] / RATE
    out_lead = np.flatnonzero(np.abs(out) > threshold)[0] / RATE
    assert raw_lead > 0.15  # the model pads its output...
    assert out_lead < 0.03  # ...and the gateway starts the sound at once
    assert len(out) < len(raw)


def test_fade_in_survives_tiny_chunks() -> None:
    t = np.arange(ms(100)) / RATE
    hard = (0.5 * np.cos(2 * np.pi * 200 * t)).astype(np.float32)
    shaper = SeamShaper(CONFIG)
    out = np.concatenate(
        [*(shaper.push(hard[i : i + 7]).pcm for i in range(0, len(hard), 7)),
         shaper.end_piece(Boundary.WORD).pcm]
    )  # fmt: skip
    whole = shape([([hard], Boundary.WORD)])
    assert np.allclose(out, whole)
    assert out[0] == 0.0
