"""Seam shaping: backend silence trimmed to a natural pause, edges faded, stream-safe."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.backends.base import SynthesisRequest, WordTiming
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.core.seams import SeamConfig, SeamShaper
from gateway.core.segmenter import Boundary
from tests.seam_quality import score_seams

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


def sine(seconds: float, phase: float = 0.0, frequency: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * frequency * t + phase)).astype(np.float32)


def test_the_seam_measure_catches_a_click_and_the_crossfade_removes_it() -> None:
    first, second = sine(0.3), sine(0.3, phase=np.pi)  # the second starts half a cycle off
    raw = np.concatenate([first, second])
    assert not score_seams(raw, [len(first)], RATE)[0].clean  # the measure hears the click
    shaper = SeamShaper(CONFIG)  # word_pause_ms = 0: pieces of one utterance are crossfaded
    out = np.concatenate(
        [
            shaper.push(first).pcm,
            shaper.end_piece(Boundary.WORD, last=False).pcm,
            shaper.push(second).pcm,
            shaper.end_piece(Boundary.SENTENCE).pcm,
        ]
    )
    seam = len(first) - ms(CONFIG.crossfade_ms) // 2  # the middle of the crossfade
    reach = CONFIG.crossfade_ms / 2 + 5
    speech = out[: len(out) - ms(CONFIG.sentence_pause_ms)]
    score = score_seams(speech, [seam], RATE, reach_ms=reach)[0]
    assert score.clean, score
    raw_score = score_seams(raw, [len(first)], RATE, reach_ms=reach)[0]
    # A kink at a zero crossing: no step, but ten times the high-frequency energy of the tone.
    assert raw_score.high_frequency > 5 * raw_score.high_frequency_limit
    assert len(out) < len(raw) + ms(CONFIG.sentence_pause_ms + 40)  # no gap was added


def test_fades_alone_would_not_hide_a_phase_jump() -> None:
    """Without the crossfade (a cut at full level) the same measure fails."""
    first, second = sine(0.3), sine(0.3, phase=np.pi)
    cut = np.concatenate([first[:-240], second[240:]])
    assert not score_seams(cut, [len(first) - 240], RATE)[0].clean


def test_placed_words_follow_the_trimmed_audio() -> None:
    piece = padded_tone(300, 500, 600)
    word = WordTiming(0, 5, ms(300), ms(800), None)
    shaper = SeamShaper(CONFIG)
    shaped = shaper.push(piece, (word,))
    (placed,) = shaped.words
    lead = ms(CONFIG.lead_ms)
    assert placed.sample_start == lead  # 300 ms of padding became the 15 ms lead
    assert placed.sample_end == lead + ms(500)
    second = shaper.push(np.zeros(10, np.float32))
    assert second.words == []
    shaper.end_piece(Boundary.SENTENCE)
    again = shaper.push(piece, (word,))
    origin = ms(15 + 500 + 30 + CONFIG.sentence_pause_ms)
    assert abs(again.words[0].sample_start - (origin + lead)) <= ms(10)


@pytest.mark.model
async def test_real_kokoro_seams_are_clean(kokoro: KokoroOnnxBackend) -> None:
    """Sentence and clause seams (pauses) and mid-sentence pass joins (crossfades) of real
    Kokoro audio score like the speech around them."""
    texts = ["The river was calm that morning,", " and the boats waited by the pier.",
             " Nobody spoke."]  # fmt: skip
    shaper = SeamShaper(CONFIG)
    out: list[np.ndarray] = []
    seams: list[int] = []
    position = 0
    for index, text in enumerate(texts):
        request = SynthesisRequest(text, "jf_gongitsune", "en-us", 1.0)
        chunks = [chunk async for chunk in kokoro.synthesize(request)]
        # Cut each pass in two model-independent halves to force a mid-sentence crossfade too.
        for chunk in chunks:
            half = len(chunk.pcm) // 2
            for part, boundary, last in (
                (chunk.pcm[:half], Boundary.WORD, False),
                (chunk.pcm[half:], chunk.piece_end or Boundary.SENTENCE, index == len(texts) - 1),
            ):
                pushed = shaper.push(part).pcm
                ended = shaper.end_piece(boundary, last=last).pcm
                out += [pushed, ended]
                position += len(pushed) + len(ended)
                seams.append(position)
    audio = np.concatenate(out)
    scores = score_seams(audio, seams[:-1], RATE)
    assert all(score.clean for score in scores), [s for s in scores if not s.clean]
