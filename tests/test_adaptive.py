"""Adaptive chunking with the real Kokoro model: a short first segment, larger calls later."""

from __future__ import annotations

import pytest

from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.core.protocol import SegmentStart
from tests.asr import transcribe, word_error_rate
from tests.conftest import repo_config, serve, timeout
from tests.streams import check_segments_cover, check_timeline, collect
from tts_gateway_client import connect
from tts_gateway_client.say import llm_tokens

pytestmark = pytest.mark.model

TEXT = (
    "The harbour was quiet when the fishing boats came back in the early evening light. "
    "Gulls followed them. Nets were hung to dry. Children ran along the pier. "
    "Somebody started to sing. The lamps came on one by one."
)


async def test_first_segment_fits_the_latency_target_and_later_calls_grow(
    kokoro: KokoroOnnxBackend,
) -> None:
    running = await serve(repo_config(), {"kokoro": kokoro})  # config.toml: adaptive on
    try:
        model = running.gateway.timing_model(kokoro)
        assert model.fixed_s > 0  # calibrated at load
        async with connect(running.ws_url) as stream:
            stream.feed(llm_tokens(TEXT))
            transcript = await collect(stream, deadline_s=timeout(120))
    finally:
        await running.stop()
    check_timeline(transcript)
    check_segments_cover(transcript.segments, TEXT)
    first, *rest = transcript.of(SegmentStart)
    # The first segment was cut short so that it could be ready within the target...
    assert len(first.text) < TEXT.index(".")
    assert model.seconds(len(first.text)) <= 0.4 + model.per_char_s * 15  # a word's slack
    # ...and later, with audio buffered, several sentences went into one call.
    assert any(segment.text.count(".") >= 2 for segment in rest), [s.text for s in rest]
    heard = transcribe(transcript.pcm(), 24000)
    assert word_error_rate(TEXT, heard) < 0.12, heard
