"""Adaptive chunking with the real Kokoro model decoding each pass whole (``windowed = false``,
a backend that synthesizes a call before its first audio): a short first segment, larger
calls later."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from gateway.backends.base import AudioChunk, Backend, SynthesisRequest
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.core.pacing import SynthesisTimeModel
from gateway.core.protocol import SegmentStart, Words
from tests.asr import transcribe, word_error_rate
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.streams import Transcript, check_segments_cover, check_timeline, collect
from tts_gateway_client import connect
from tts_gateway_client.say import llm_tokens

pytestmark = pytest.mark.model

TEXT = (
    "The harbour was quiet, and the fishing boats came back in the early evening light. "
    "Gulls followed them. Nets were hung to dry. Children ran along the pier. "
    "Somebody started to sing. The lamps came on one by one."
)


# What Kokoro's calls cost on an idle 2-core machine (the calibration's figures: the prior's
# 0.2 s and 17-21 ms per character). The tests pin the gateway's timing model to it, so that the
# sizes they check do not depend on how busy the machine is (a busy one learns 1.1 s + 45 ms).
IDLE_FIXED_S = 0.2
IDLE_PER_CHAR_S = 0.02


def pin_timing(monkeypatch: pytest.MonkeyPatch, running: RunningServer, backend: Backend) -> None:
    """Pin the gateway's timing model of ``backend`` to the idle figures; it learns no more."""
    model = running.gateway.timing_model(backend)
    assert model.fixed_s > 0  # calibrated at load
    model.fixed_s, model.per_char_s = IDLE_FIXED_S, IDLE_PER_CHAR_S
    monkeypatch.setattr(SynthesisTimeModel, "observe", lambda *_: None)


async def test_first_segment_fits_the_latency_target_and_later_calls_grow(
    kokoro_whole: KokoroOnnxBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await serve(repo_config(), {"kokoro": kokoro_whole})  # config.toml: adaptive on
    try:
        pin_timing(monkeypatch, running, kokoro_whole)
        model = running.gateway.timing_model(kokoro_whole)
        async with connect(running.ws_url) as stream:
            stream.feed(llm_tokens(TEXT))
            transcript = await collect(stream, deadline_s=timeout(120))
    finally:
        await running.stop()
    check_timeline(transcript)
    check_segments_cover(transcript.segments, TEXT)
    first, *rest = transcript.of(SegmentStart)
    # The first segment was cut short, at the clause mark, so that it could be ready within the
    # target (never at a bare word gap: without a clause mark in time it is the sentence)...
    assert first.text == "The harbour was quiet,", first.text
    assert first.boundary == "clause"
    assert model.seconds(len(first.text)) <= 0.4 + model.per_char_s * 15  # a word's slack
    # ...and later, with audio buffered, several sentences went into one call.
    assert any(segment.text.count(".") >= 2 for segment in rest), [s.text for s in rest]
    heard = transcribe(transcript.pcm(), 24000)
    assert word_error_rate(TEXT, heard) < 0.12, heard


class _Calls:
    """The real Kokoro backend, recording the text of every call."""

    def __init__(self, backend: KokoroOnnxBackend) -> None:
        self._backend = backend
        self.texts: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def synthesize(self, request: SynthesisRequest) -> AsyncIterator[AudioChunk]:
        self.texts.append(request.text)
        return self._backend.synthesize(request)


async def _speak_recording_calls(
    kokoro: KokoroOnnxBackend, text: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Transcript, _Calls]:
    """Speak ``text`` in one message through a gateway on the repo's config (adaptive), with
    the backend calls recorded and the timing model pinned (:func:`pin_timing`)."""
    calls = _Calls(kokoro)
    running = await serve(repo_config(), {"kokoro": cast(Backend, calls)})
    try:
        pin_timing(monkeypatch, running, cast(Backend, calls))
        async with connect(running.ws_url) as stream:
            stream.feed([text])
            transcript = await collect(stream, deadline_s=timeout(120))
    finally:
        await running.stop()
    return transcript, calls


LONG_SENTENCE = (
    "Good evening. The harbour lay quiet in the last of the light, the boats were tied up "
    "along the wall, the nets hung drying on their poles, and somewhere up the hill a dog "
    "barked twice at nothing in particular before the night came down."
)


async def test_a_sentence_too_long_for_the_buffer_is_spoken_in_several_calls(
    kokoro_whole: KokoroOnnxBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the short first segment the listener has about a second of audio; the long
    sentence would take longer than that in one call, so it is split at clauses into calls
    that fit, and its words still point at the exact client text."""
    transcript, calls = await _speak_recording_calls(kokoro_whole, LONG_SENTENCE, monkeypatch)
    check_timeline(transcript)
    segments = transcript.of(SegmentStart)
    check_segments_cover(segments, LONG_SENTENCE)
    spoken = [text for text in calls.texts if text in LONG_SENTENCE]  # not calibration calls
    assert len(spoken) > len(segments), (spoken, [s.text for s in segments])
    assert "".join(spoken) == LONG_SENTENCE
    # Cut at clauses where one fits the budget, and the calls grow with the buffer.
    assert any(text.endswith(", ") for text in spoken), spoken
    assert len(spoken[-1]) > len(spoken[len(segments) - 1]), spoken
    words = [w for message in transcript.of(Words) for w in message.words]
    assert [w["text"] for w in words] == [
        LONG_SENTENCE[w["char_start"] : w["char_end"]] for w in words
    ]
    assert len(words) >= 0.9 * len(LONG_SENTENCE.split())
    starts = [w["sample_start"] for w in words]
    assert starts == sorted(starts)
    heard = transcribe(transcript.pcm(), 24000)
    assert word_error_rate(LONG_SENTENCE, heard) < 0.12, heard


NO_CLAUSE = (
    "Good evening. The old harbour master walked slowly along the wall to check that every "
    "boat was tied up properly before the tide turned and the wind came in from the west "
    "over the dark water."
)


async def test_a_long_sentence_without_clauses_is_cut_at_a_word_gap_rather_than_run_dry(
    kokoro_whole: KokoroOnnxBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With about a second buffered after the first segment and no clause mark to cut at, one
    call on the whole long sentence would leave the listener in silence; it is cut at word
    gaps into calls that are ready in time, joined without a pause."""
    transcript, calls = await _speak_recording_calls(kokoro_whole, NO_CLAUSE, monkeypatch)
    check_timeline(transcript)
    check_segments_cover(transcript.of(SegmentStart), NO_CLAUSE)
    spoken = [text for text in calls.texts if text in NO_CLAUSE]  # not calibration calls
    assert "".join(spoken) == NO_CLAUSE
    second = NO_CLAUSE[NO_CLAUSE.index(".") + 1 :]
    inside = [text for text in spoken if text in second and text != second]
    assert len(inside) >= 2, spoken  # the second sentence took several calls...
    assert all(text.endswith(" ") for text in inside[:-1]), spoken  # ...cut at word gaps
    heard = transcribe(transcript.pcm(), 24000)
    assert word_error_rate(NO_CLAUSE, heard) < 0.15, heard
