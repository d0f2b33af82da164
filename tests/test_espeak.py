# ruff: noqa: RUF001 (IPA and Cyrillic letters are the point of these tests)
"""espeak-ng specifics: exact word offsets in any script, private engines, voices and settings.

The library and its data are the ones bundled by espeakng-loader (installed from PyPI).
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from numpy.typing import NDArray

from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest, UnknownVoiceError
from gateway.backends.espeak import (
    AUTO_VOICE,
    Delivery,
    EspeakBackend,
    EspeakEngine,
    EspeakEvent,
    WordTracker,
)
from gateway.backends.settings import EspeakSettings
from gateway.backends.wordmap import SpokenText
from gateway.core.reading import read
from gateway.core.segmenter import Boundary
from tests.conftest import timeout


async def synthesize(
    backend: EspeakBackend, text: str, lang: str = "en-us", speed: float = 1.0
) -> list[AudioChunk]:
    request = SynthesisRequest(text, AUTO_VOICE, lang, speed)
    return [chunk async for chunk in backend.synthesize(request)]


def timed_words(text: str, chunks: list[AudioChunk]) -> list[str]:
    return [text[w.char_start : w.char_end] for chunk in chunks for w in chunk.words]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("😀 Smile: the café is naïve, and the façade is old!", "en-us"),
        ("Grüße aus Köln, die Straße ist schön.", "de"),
        ("Où est-il allé hier soir ? À la gare.", "fr"),
        ("Привет, как дела у тебя сегодня?", "ru"),
        ("Stay for a while. N'est-ce pas? Mr. and Mrs. Smith.", "en-us"),
        ("N'est-ce pas? C'est la vie, mon ami.", "fr"),
    ],
)
# espeak-ng counts characters (code points, 1-based), not bytes; these texts put multi-byte
# and non-BMP characters before words. Words espeak joins to a neighbour and reports no event
# for ("for a while", the "pas" of "n'est-ce pas") are timed too.
async def test_every_word_is_timed_at_its_exact_offset(
    espeak: EspeakBackend, text: str, lang: str
) -> None:
    chunks = await synthesize(espeak, text, lang)
    expected = [text[w.char_start : w.char_end] for w in read(text, lang).words]
    assert timed_words(text, chunks) == expected
    assert chunks[-1].piece_end is not None


def test_engines_are_private_copies_of_the_library() -> None:
    first, second = EspeakEngine(), EspeakEngine()
    handles = {first._lib._handle, second._lib._handle}
    assert len(handles) == 2, "each engine has its own espeak-ng state"
    assert first.sample_rate == second.sample_rate == 22050


_PLAIN = Delivery(175, 50)


def _speak(engine: EspeakEngine, text: str, delivery: Delivery = _PLAIN) -> NDArray[np.int16]:
    buffers: list[NDArray[np.int16]] = []

    def sink(pcm: NDArray[np.int16], events: list[EspeakEvent]) -> bool:
        buffers.append(pcm)
        return True

    engine.synthesize(text, "gmw/en-US", delivery, sink)
    return np.concatenate(buffers)


def test_the_word_gap_adds_a_pause_between_words() -> None:
    engine = EspeakEngine()
    text = "one two three four five six"
    lengths = [len(_speak(engine, text, Delivery(175, 50, word_gap=gap))) for gap in (0, 2, 10)]
    pause_s = [(n - lengths[0]) / 5 / engine.sample_rate for n in lengths]  # five gaps
    assert pause_s[0] == 0 < pause_s[1] < pause_s[2]
    assert 0.03 < pause_s[1] < 0.1  # as Delivery documents: about 60 ms


def test_a_word_gap_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="word_gap: must be between 0 and 100"):
        EspeakSettings(word_gap=-1)


def test_espeak_kokoro_and_piper_phonemizers_do_not_interfere() -> None:
    """espeak synthesis on two engines, Kokoro's phonemizer (phonemizer's copy of the same
    library) and Piper's (its own espeak-ng) all at once: each gives what it gives alone."""
    from kokoro_onnx.tokenizer import Tokenizer
    from piper.phonemize_espeak import EspeakPhonemizer

    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "Phonemes must not leak between engines, whatever runs beside them.",
        "Numbers like 1985 and 42 are read out in full.",
    ]
    tokenizer, phonemizer = Tokenizer(), EspeakPhonemizer()
    kokoro_alone = [tokenizer.phonemize(t, "en-us") for t in texts]
    piper_alone = [phonemizer.phonemize("en-us", t) for t in texts]
    # Engine output depends on what the engine spoke before, so compare fresh engines.
    reference, fresh = EspeakEngine(), [EspeakEngine(), EspeakEngine()]
    espeak_alone = [_speak(reference, t) for t in texts * 3]
    failures: list[str] = []

    def kokoro() -> None:
        for _ in range(20):
            for text, alone in zip(texts, kokoro_alone, strict=True):
                if tokenizer.phonemize(text, "en-us") != alone:
                    failures.append(f"kokoro: {text}")

    def piper() -> None:
        for _ in range(20):
            for text, alone in zip(texts, piper_alone, strict=True):
                if phonemizer.phonemize("en-us", text) != alone:
                    failures.append(f"piper: {text}")

    def espeak(engine: EspeakEngine) -> None:
        for text, alone in zip(texts * 3, espeak_alone, strict=True):
            if not np.array_equal(_speak(engine, text), alone):
                failures.append(f"espeak: {text}")

    threads = [threading.Thread(target=kokoro), threading.Thread(target=piper)]
    threads += [threading.Thread(target=espeak, args=(engine,)) for engine in fresh]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


async def test_voices_and_languages(espeak: EspeakBackend) -> None:
    voices = {v.id: v for v in espeak.voices()}
    assert AUTO_VOICE in voices
    assert {"en-us", "en-gb", "de", "fr-fr", "es", "ru", "cmn"} <= set(espeak.languages)
    assert voices["de"].language == "de"
    assert voices["en-us"].name == "English (America)"
    # One voice per voice file, sorted by name, with the codes that select it; every language
    # code is still accepted as a voice.
    listed = [v for v in espeak.voices() if v.id != AUTO_VOICE]
    names = [v.name for v in listed]
    assert names == sorted(names, key=str.casefold)
    assert len(set(names)) == len(names)
    assert voices["en-gb"].name == "English (Great Britain)"
    assert voices["en-gb"].languages == ("en", "en-gb")
    assert "en" not in voices
    assert {code for v in listed for code in v.languages} == set(espeak.languages)
    assert all(espeak.resolve_voice(code) == code for code in espeak.languages)
    with pytest.raises(UnknownVoiceError):
        espeak.resolve_voice("xx-nowhere")
    # "auto" follows the session's language; a language voice speaks its own language.
    auto = SynthesisRequest("Guten Morgen!", AUTO_VOICE, "de", 1.0)
    named = SynthesisRequest("Guten Morgen!", "de", "en-us", 1.0)
    assert espeak._voice_name(auto) == espeak._voice_name(named) == "gmw/de+m1"
    assert espeak._voice_name(SynthesisRequest("Hi", AUTO_VOICE, "en-us", 1.0)) == "gmw/en-US+m1"
    assert sum(len(c.pcm) for c in await synthesize(espeak, "Guten Morgen!", "de")) > 0


async def test_speed_changes_the_rate(espeak: EspeakBackend) -> None:
    text = "A sentence long enough to measure how fast it is spoken by the voice."
    normal = sum(len(c.pcm) for c in await synthesize(espeak, text))
    fast = sum(len(c.pcm) for c in await synthesize(espeak, text, speed=2.0))
    slow = sum(len(c.pcm) for c in await synthesize(espeak, text, speed=0.6))
    assert fast < 0.7 * normal
    assert slow > 1.3 * normal


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (EspeakSettings(default_lang="xx-yy"), "default_lang 'xx-yy' is not a language"),
        (EspeakSettings(default_voice="robot"), "default_voice 'robot' is neither"),
        (EspeakSettings(variant="nope"), "variant 'nope' is not an espeak-ng voice variant"),
    ],
)
async def test_bad_settings_fail_the_load_clearly(settings: EspeakSettings, message: str) -> None:
    backend = EspeakBackend("espeak", settings)
    with pytest.raises(BackendError, match=message):
        await backend.load()
    await backend.aclose()


async def test_a_variant_changes_the_voice() -> None:
    plain, female = (
        EspeakBackend("e", s) for s in (EspeakSettings(), EspeakSettings(variant="f3"))
    )
    for backend in (plain, female):
        await backend.load()
    text = "Hello there, how are you?"
    a = np.concatenate([c.pcm for c in await synthesize(plain, text)])
    b = np.concatenate([c.pcm for c in await synthesize(female, text)])
    assert len(a) != len(b) or not np.array_equal(a, b)
    for backend in (plain, female):
        await backend.aclose()


def test_word_tracker_merges_expansions_and_trims_silence() -> None:
    """Synthetic espeak buffers: "42 ok." read as "forty-two ok.", with pauses."""
    text = "42 ok."
    spoken = SpokenText(text)
    assert spoken.spoken == "forty-two ok."
    tracker = WordTracker(spoken)
    tone = np.full(100, 8000, np.int16)
    quiet = np.zeros(50, np.int16)
    word, end = 1, 5
    out = [
        tracker.feed(np.concatenate((tone, quiet)), [EspeakEvent(word, 1, 0)]),  # "forty"
        tracker.feed(np.concatenate((tone, quiet)), [EspeakEvent(word, 7, 150)]),  # "two"
        tracker.feed(np.concatenate((tone, quiet)), [EspeakEvent(word, 11, 300)]),  # "ok"
        tracker.feed(quiet, [EspeakEvent(end, 14, 450)]),
    ]
    last = tracker.finish(text)
    chunks = [c for c in out if c is not None] + [last]
    words = [w for c in chunks for w in c.words]
    assert [(text[w.char_start : w.char_end], w.sample_start, w.sample_end) for w in words] == [
        ("42", 0, 250),  # both parts, less the trailing pause
        ("ok", 300, 400),
    ]
    assert sum(len(c.pcm) for c in chunks) == 500
    assert last.piece_end is Boundary.SENTENCE
    # Each word travels with (or before) the chunk that holds its first sample.
    position = 0
    for chunk in chunks:
        for w in chunk.words:
            assert w.sample_start < position + len(chunk.pcm)
        position += len(chunk.pcm)


def test_word_tracker_times_words_espeak_reports_no_event_for() -> None:
    """Synthetic buffers: "Stay for a while." with events for "Stay" and "for" only (espeak
    joins "a while" to "for"): the stretch from "for" to the clause's end is shared by "for",
    "a" and "while" by the length of their readings."""
    text = "Stay for a while."
    tracker = WordTracker(SpokenText(text))
    tone = np.full(100, 8000, np.int16)
    word, end = 1, 5
    out = [
        tracker.feed(tone, [EspeakEvent(word, 1, 0)]),  # "Stay"
        tracker.feed(np.concatenate((tone, tone, tone)), [EspeakEvent(word, 6, 100)]),  # "for"
        tracker.feed(np.zeros(0, np.int16), [EspeakEvent(end, 18, 400)]),
    ]
    last = tracker.finish(text)
    words = [w for c in [*out, last] if c is not None for w in c.words]
    assert [(text[w.char_start : w.char_end], w.sample_start, w.sample_end) for w in words] == [
        ("Stay", 0, 100),
        ("for", 100, 190),  # 3 of the 10 characters of "for", "a" and "while."
        ("a", 190, 220),
        ("while", 220, 400),
    ]


async def test_closing_the_backend_stops_a_stream_nobody_closed() -> None:
    backend = EspeakBackend("espeak", EspeakSettings(max_buffered_s=0.1, warmup=False))
    await backend.load()
    request = SynthesisRequest("A long text that fills the buffer. " * 20, AUTO_VOICE, "en-us", 1.0)
    abandoned = backend.synthesize(request)
    await anext(abandoned)  # the worker now waits for room: nobody reads or closes the stream
    await backend.aclose()  # returns: the worker was told to stop
    assert not backend.ready
    await abandoned.aclose()
    assert backend.counters.running == 0


async def test_a_slow_reader_does_not_hold_the_engine() -> None:
    """One engine; a session that reads its audio slowly (paced to its listener) has its whole
    segment synthesized and buffered, and the next session is served meanwhile."""
    backend = EspeakBackend("espeak", EspeakSettings(max_concurrency=1, warmup=False))
    await backend.load()
    try:
        slow = backend.synthesize(SynthesisRequest("A slow listener. " * 5, AUTO_VOICE, "en-us", 1))
        await anext(slow)  # and reads no further for now
        async with asyncio.timeout(timeout(10)):  # would wait for the engine forever
            other = [c async for c in backend.synthesize(
                SynthesisRequest("Next session.", AUTO_VOICE, "en-us", 1.0))]  # fmt: skip
        assert sum(len(c.pcm) for c in other) > 0
        rest = [c async for c in slow]
        assert sum(len(c.pcm) for c in rest) > 0
        assert backend.counters.running == 0
    finally:
        await backend.aclose()
