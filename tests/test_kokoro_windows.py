"""Kokoro decoded window by window: the windows join into the whole decode (parity), without
clicks at the joins, as intelligible as a whole pass; how windows are sized.

The windowed generator uses fixed per-voice norm statistics (gateway/backends/kokoro_windows.py);
parity is against a whole decode of the same pass with the same statistics, which isolates what
windowing does. The statistics' own effect is judged by ear (Whisper) against the shipped model.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from numpy.typing import NDArray

from gateway.backends.base import SynthesisRequest
from gateway.backends.kokoro_graphs import HOP
from gateway.backends.kokoro_onnx import KokoroOnnxBackend, timed_model
from gateway.backends.kokoro_phonemes import PassWords
from gateway.backends.kokoro_windows import (
    CALIBRATION_TEXTS,
    PAD_CONTEXT,
    FrontPass,
    Joiner,
    ListenerClock,
    NormStats,
    Window,
    WindowedModel,
    decode_window,
    first_decoded_frame,
    heard_s,
    run_front,
    snapped_end,
)
from gateway.backends.settings import KokoroOnnxSettings
from gateway.core.chunks import AudioChunk, WordTiming
from tests.asr import transcribe, word_error_rate, words
from tests.seam_quality import score_seams

SHORT = "The quick brown fox jumps over the lazy dog near the river bank."
SENTENCE = (
    "The quick brown fox jumps over the lazy dog, and then it runs back into the forest "
    "before anyone notices."
)
PARAGRAPHS = [
    "Streaming speech synthesis is a balancing act. The listener wants to hear the first word "
    "as soon as possible, but the voice should still sound natural.",
    "Seven engineers built a small bridge across the valley in just three weeks. The villagers "
    "celebrated with music and a long dinner.",
    "Please remember to buy milk, eggs, and fresh bread on your way home. The store closes "
    "early on Sundays, so do not be late.",
    "The old lighthouse keeper climbed the stairs every evening. He lit the lamp, checked the "
    "weather, and wrote a few lines in his journal before sleeping.",
    "Our train left the station twenty minutes late, but the driver made up most of the time "
    "before we reached the coast.",
]


# -- window sizes (no model) --------------------------------------------------------------------


def sizing_model() -> WindowedModel:
    stats = NormStats(size=1, cache=Path("/nonexistent"), key="k")
    return WindowedModel(fronts={}, generators={}, probe=_no_probe, stats=stats, crossfade=0,
                         first_frames=32)  # fmt: skip


def _no_probe() -> ort.InferenceSession:
    raise AssertionError("sizing windows needs no model")


def plan(model: WindowedModel, frames: int, *, due_s: float | None, busy: bool) -> list[int]:
    import time

    ends, start = [], 0
    while start < frames:
        due = None if due_s is None else time.monotonic() + due_s
        start = model.next_end(start, frames, due, busy=busy, first=start == 0)
        ends.append(start)
    return ends


@pytest.mark.parametrize("frames", [1, 40, 63, 64, 65, 200, 700, 2046])
def test_windows_cover_a_pass_and_start_small(frames: int) -> None:
    model = sizing_model()
    for due_s, busy in ((None, False), (0.3, False), (2.0, True), (30.0, False)):
        ends = plan(model, frames, due_s=due_s, busy=busy)
        assert ends[-1] == frames
        assert ends == sorted(set(ends))
        sizes = np.diff([0, *ends])
        assert sizes.max() <= (160 if busy else 480) + 16  # a short tail may join the last
        if frames >= 64:
            assert ends[0] == 32  # a short first window: the first sound
        else:
            assert ends == [frames]  # a short pass is one window


def test_windows_grow_with_the_listeners_buffer() -> None:
    model = sizing_model()
    model.observe(Window(0, 100, 0, 100), 0.3, cores=2)  # 3 ms a frame
    hurried = plan(model, 2000, due_s=0.1, busy=False)
    calm = plan(model, 2000, due_s=4.0, busy=False)
    assert len(calm) < len(hurried)
    assert np.diff([0, *hurried])[1] == 32  # late: never below a first window's size


def test_a_join_without_crossfade_trims_the_context_exactly() -> None:
    whole = np.arange(60 * HOP, dtype=np.float32)
    joiner = Joiner()
    windows = [Window.of(0, 20, 60), Window.of(20, 45, 60), Window.of(45, 60, 60)]
    out = [
        joiner.join(w, whole[w.context_start * HOP : w.context_end * HOP], last=w.end == 60)
        for w in windows
    ]
    assert np.array_equal(np.concatenate([o.audio for o in out]), whole)
    assert [o.sample_start for o in out] == [0, 20 * HOP, 45 * HOP]


def test_a_crossfade_of_identical_decodes_changes_nothing() -> None:
    whole = np.sin(np.arange(60 * HOP) / 7).astype(np.float32)
    joiner = Joiner(crossfade=96)
    windows = [Window.of(0, 20, 60), Window.of(20, 60, 60)]
    joined = [
        joiner.join(w, whole[w.context_start * HOP : w.context_end * HOP], last=w.end == 60).audio
        for w in windows
    ]
    assert np.allclose(np.concatenate(joined), whole, atol=1e-6)
    assert len(joined[0]) == 20 * HOP - 48  # the blend is handed out with the next window


# -- parity with the real model -----------------------------------------------------------------


def _front(kokoro: KokoroOnnxBackend, text: str) -> tuple[FrontPass, NDArray[np.float32]]:
    windows = kokoro._windows
    assert windows is not None
    assert kokoro._phonemizer is not None
    model_pass = kokoro._phonemizer.passes(text, "en-us")[0]
    pack = kokoro._voices.pack(kokoro.default_voice)
    style = pack[len(model_pass.tokens) - 1].reshape(1, -1)
    front = run_front(windows.fronts[max(windows.fronts)], model_pass.tokens, style, 1.0)
    return front, windows.stats.of([(kokoro.default_voice, 1.0)])


def _windowed(model: WindowedModel, front: FrontPass, stats: NDArray[np.float32]) -> tuple[
    NDArray[np.float32], list[int]
]:  # fmt: skip
    """The pass decoded in windows of 32, 40, 56... frames, and where they join."""
    generator = model.generators[max(model.generators)]
    joiner = Joiner(model.crossfade)
    start, size, parts, joins = 0, 32, [], []
    while start < front.frames:
        end = min(front.frames, start + size)
        end = front.frames if front.frames - end < 16 else end
        window = model.window(start, end, front.frames)
        decoded = decode_window(generator, front, stats, window)
        parts.append(joiner.join(window, decoded, last=end == front.frames).audio)
        joins.append(end * HOP)
        start, size = end, size + 8 * len(parts)
    return np.concatenate(parts), joins[:-1]


def _whole(model: WindowedModel, front: FrontPass, stats: NDArray[np.float32]) -> NDArray[
    np.float32
]:  # fmt: skip
    window = Window(0, front.frames, 0, front.frames)
    return decode_window(model.generators[max(model.generators)], front, stats, window)


def log_mel_distance_db(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Mean absolute difference of the two signals' log-mel spectra (80 bands, 10 ms hop), in
    dB, over the frames where ``b`` is speech (within 50 dB of its loudest frame)."""
    n_fft, hop = 1024, 240
    freqs = np.fft.rfftfreq(n_fft, 1 / 24000)
    mel = 2595 * np.log10(1 + freqs / 700)
    edges = np.linspace(0, mel[-1], 82)
    rising = (mel - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - mel) / np.diff(edges)[1:, None]
    bank = np.clip(np.minimum(rising, falling), 0, None)

    def spectrum(signal: NDArray[np.float32]) -> NDArray[np.float64]:
        padded = np.pad(signal.astype(np.float64), n_fft // 2)
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop] * np.hanning(n_fft)
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        spec: NDArray[np.float64] = 10 * np.log10(power @ bank.T + 1e-10)
        return spec

    n = min(len(a), len(b))
    x, y = spectrum(a[:n]), spectrum(b[:n])
    loudness = 10 * np.log10(np.sum(10 ** (y / 10), axis=1))
    speech = loudness > loudness.max() - 50
    return float(np.mean(np.abs(x[speech] - y[speech])))


@pytest.mark.model
def test_the_front_gives_the_shipped_models_durations(kokoro: KokoroOnnxBackend) -> None:
    """Word timings come from the same durations as a whole pass of the shipped model."""
    front, _ = _front(kokoro, SENTENCE)
    settings = kokoro._settings
    from gateway.backends.kokoro_graphs import inference_session
    from gateway.backends.kokoro_onnx import _cache_dir, resolve_model

    timed, _ = timed_model(resolve_model(settings), _cache_dir(settings))
    assert kokoro._phonemizer is not None
    tokens = kokoro._phonemizer.passes(SENTENCE, "en-us")[0].tokens
    pack = kokoro._voices.pack(kokoro.default_voice)
    _, durations = inference_session(timed, 2).run(
        None,
        {"tokens": np.array([[0, *tokens, 0]], np.int64),
         "style": pack[len(tokens) - 1].reshape(1, -1), "speed": np.array([1.0], np.float32)},
    )  # fmt: skip
    assert np.array_equal(front.durations, np.asarray(durations).ravel())
    assert front.samples == 600 * int(front.durations.sum())


@pytest.fixture(scope="module")
async def kokoro_fp32() -> KokoroOnnxBackend:
    """Kokoro with the float32 generator (the same weights, dequantized at load)."""
    backend = KokoroOnnxBackend("kokoro", KokoroOnnxSettings(window_precision="fp32", warmup=False))
    await backend.load()
    return backend


@pytest.mark.model
def test_float32_windows_are_the_whole_decode(kokoro_fp32: KokoroOnnxBackend) -> None:
    model = kokoro_fp32._windows
    assert model is not None
    front, stats = _front(kokoro_fp32, SENTENCE)
    windowed, _ = _windowed(model, front, stats)
    whole = _whole(model, front, stats)
    assert len(windowed) == len(whole) == front.samples
    assert float(np.abs(windowed - whole).max()) < 1e-4  # the same audio, sample for sample
    assert log_mel_distance_db(windowed, whole) < 0.01


@pytest.mark.model
def test_a_window_from_the_pad_before_the_first_word_needs_little_context(
    kokoro_fp32: KokoroOnnxBackend,
) -> None:
    """A pass's first window starts in the pad before its first word, where the generator's
    input is flat: :data:`PAD_CONTEXT` frames before it give the whole decode (none at all give
    a click of about 0.1 at the window's start)."""
    model = kokoro_fp32._windows
    assert model is not None
    for text in (SHORT, *CALIBRATION_TEXTS):
        front, stats = _front(kokoro_fp32, text)
        assert kokoro_fp32._phonemizer is not None
        model_pass = kokoro_fp32._phonemizer.passes(text, "en-us")[0]
        lead = first_decoded_frame(
            PassWords(model_pass, front.durations, front.samples).first_start()
        )
        assert 0 < lead < front.durations[0] * 2  # the window starts in the pad
        window = model.window(lead, lead + 40, front.frames, after_pad=True)
        assert window.start - window.context_start == PAD_CONTEXT
        decoded = decode_window(model.generators[max(model.generators)], front, stats, window)
        whole = _whole(model, front, stats)
        skip = (window.start - window.context_start) * HOP
        body = decoded[skip : skip + (window.end - window.start) * HOP]
        assert float(np.abs(body - whole[lead * HOP : (lead + 40) * HOP]).max()) < 1e-3, text


@pytest.mark.model
def test_int8_windows_differ_from_the_whole_decode_no_more_than_its_precision_does(
    kokoro: KokoroOnnxBackend, kokoro_fp32: KokoroOnnxBackend
) -> None:
    """Each int8 window quantizes its activations over its own range (dynamic quantization):
    the windows differ from the int8 whole decode by about as much as that whole decode
    differs from the float32 one (the quantization's own effect on the same pass)."""
    int8, fp32 = kokoro._windows, kokoro_fp32._windows
    assert int8 is not None
    assert fp32 is not None
    front, stats = _front(kokoro, SENTENCE)
    windowed, joins = _windowed(int8, front, stats)
    whole = _whole(int8, front, stats)
    precision_db = log_mel_distance_db(whole, _whole(fp32, front, stats))
    windowing_db = log_mel_distance_db(windowed, whole)
    assert windowing_db <= 1.25 * precision_db + 0.3, (windowing_db, precision_db)
    # No click where two windows join: steps and high-frequency energy there stay within what
    # the same audio has inside speech.
    scores = score_seams(windowed, joins, 24000)
    assert all(score.clean for score in scores), [s for s in scores if not s.clean]


@pytest.mark.model
async def test_windowed_speech_is_as_intelligible_as_whole_passes(
    kokoro: KokoroOnnxBackend, kokoro_whole: KokoroOnnxBackend
) -> None:
    # Pooled over every word of the paragraphs (about 110): one word a recognizer hears
    # differently is within the margin, three are not.
    reference_words = sum(len(words(text)) for text in PARAGRAPHS)
    rates = {}
    for name, backend in (("windowed", kokoro), ("whole", kokoro_whole)):
        misheard = 0.0
        for text in PARAGRAPHS:
            request = SynthesisRequest(text, backend.default_voice, "en-us", 1.0)
            pcm = np.concatenate([chunk.pcm async for chunk in backend.synthesize(request)])
            misheard += word_error_rate(text, transcribe(pcm, 24000)) * len(words(text))
        rates[name] = misheard / reference_words
    assert rates["windowed"] <= rates["whole"] + 0.02, rates


@pytest.mark.model
async def test_a_sentence_streams_in_windows_with_its_words(kokoro: KokoroOnnxBackend) -> None:
    request = SynthesisRequest(SENTENCE, kokoro.default_voice, "en-us", 1.0, deadline=None)
    chunks = [chunk async for chunk in kokoro.synthesize(request)]
    assert len(chunks) >= 2  # the first window's audio comes before the rest is decoded
    assert [c.piece_end is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    words = [word for chunk in chunks for word in chunk.words]
    assert [SENTENCE[w.char_start : w.char_end] for w in words] == [
        token.strip(",.") for token in SENTENCE.split()
    ]
    # Each chunk holds the words whose sound starts in it, sent no later than their audio.
    sent = 0
    for chunk in chunks:
        assert all(word.sample_start >= sent for word in chunk.words)
        sent += len(chunk.pcm)
    assert sent == 600 * int(_front(kokoro, SENTENCE)[0].durations.sum())
    assert max(w.sample_end for w in words) <= sent


async def test_a_first_window_holds_speech_not_just_its_first_word(
    kokoro: KokoroOnnxBackend,
) -> None:
    """The first window is sized from the first word on (the pad before it is not decoded):
    its chunk holds words worth about ``first_window_ms`` of speech, so the listener has
    something to play while the second window decodes (it held only "The", 60 ms, when the
    window's end was snapped as if it were sized from the decoded pad)."""
    request = SynthesisRequest(SHORT, kokoro.default_voice, "en-us", 1.0, deadline=None)
    first = await anext(aiter(kokoro.synthesize(request)))
    assert len(first.words) >= 2, first.words
    assert heard_s(first, first=True) >= 0.75 * KokoroOnnxSettings().first_window_ms / 1000


async def test_a_requests_first_window_is_short_only_when_its_listener_waits(
    kokoro: KokoroOnnxBackend,
) -> None:
    """A request made while its listener still plays seconds of audio (a sentence after the
    first) is not cut at a short first window: that window would cost its context and decoded
    pad and win nothing (each sentence of a paragraph began with one)."""
    now = time.monotonic()
    chunks = {}
    # 60 s ahead: one window even if the windows so far ran slowly (a busy machine).
    for buffered_s in (0.0, 60.0):
        due = now + max(0.25, buffered_s)
        request = SynthesisRequest(
            SHORT, kokoro.default_voice, "en-us", 1.0, deadline=due, buffered_s=buffered_s
        )
        chunks[buffered_s] = [chunk async for chunk in kokoro.synthesize(request)]
    assert len(chunks[0.0]) >= 2  # waited for: a short first window, then the rest
    assert len(chunks[60.0]) == 1  # a minute ahead: the pass in one window


def test_windows_end_where_words_end() -> None:
    ends = [10, 25, 38, 51, 70, 90]
    assert snapped_end(32, 0, ends, 100) == 25  # the last word end in the second half
    assert snapped_end(45, 32, ends, 100) == 38
    assert snapped_end(60, 40, ends, 100) == 51
    assert snapped_end(64, 52, ends, 100) == 70  # none in it: the next, within half a window
    assert snapped_end(80, 72, [10, 100], 120) == 80  # no word end near: as planned
    assert snapped_end(100, 90, ends, 100) == 100  # the pass's end
    assert snapped_end(32, 0, [60, 80], 100) == 60  # a first window holds the first word
    assert snapped_end(40, 20, [60, 80], 100) == 60  # wherever it starts (the pad not decoded)


def test_a_first_chunk_is_heard_from_its_first_word() -> None:
    word = WordTiming(0, 3, 2400, 4000, "the")
    chunk = AudioChunk(np.zeros(4800, dtype=np.float32), words=(word,))
    assert heard_s(chunk, first=True) == pytest.approx(0.1)  # the pad before "the" is trimmed
    assert heard_s(chunk, first=False) == pytest.approx(0.2)
    assert heard_s(AudioChunk(np.zeros(4800, dtype=np.float32)), first=True) == pytest.approx(0.2)


def test_the_listener_runs_dry_when_what_it_holds_and_what_was_sent_are_played() -> None:
    waiting = ListenerClock(started=100.0, deadline=100.4, buffered_s=0.0)
    assert waiting.due() == 100.4  # nothing sent: the request's deadline (its priority)
    waiting.sent(0.5, at=100.2)  # the first sound at 100.2: playback starts then
    assert waiting.due() == pytest.approx(100.7)
    playing = ListenerClock(started=100.0, deadline=103.0, buffered_s=3.0)
    playing.sent(0.5, at=100.2)
    assert playing.due() == pytest.approx(103.5)  # after what it held, then what was sent
    unknown = ListenerClock(started=100.0, deadline=101.0, buffered_s=None)
    unknown.sent(0.5, at=100.2)
    assert unknown.due() == pytest.approx(101.5)
