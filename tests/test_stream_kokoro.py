"""End to end with the real Kokoro model: a real server on loopback, the real client, real Opus."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from gateway.core.protocol import (
    Audio,
    Cancelled,
    Done,
    Flushed,
    Progress,
    SegmentEnd,
    SegmentStart,
)
from tests.asr import transcribe, word_error_rate
from tests.conftest import RunningServer, timeout
from tests.streams import check_segments_cover, check_timeline, collect
from tts_gateway_client import connect
from tts_gateway_client.say import llm_tokens

pytestmark = pytest.mark.model

PASSAGE = (
    "The lighthouse keeper climbed the stairs every evening at dusk. "
    "He trimmed the wick, polished the lens, and watched the ships pass by. "
    "On stormy nights, he stayed awake until the sun came up again."
)


async def test_health_and_voices(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        health = await http.get("/healthz")
        voices = await http.get("/v1/voices")
    assert health.status_code == 200
    body = health.json()
    assert (body["status"], body["backends"]) == ("ok", {"kokoro": "ready", "fake": "ready"})
    kokoro = [v for v in voices.json()["voices"] if v["backend"] == "kokoro"]
    assert [v["id"] for v in kokoro] == [
        "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"
    ]  # fmt: skip
    assert all("en-us" in v["languages"] for v in kokoro)


async def test_llm_token_stream_becomes_intelligible_continuous_speech(
    server: RunningServer,
) -> None:
    async with connect(server.ws_url) as stream:
        assert stream.ready.format == "opus"
        assert stream.ready.sample_rate == 24000
        stream.feed(llm_tokens(PASSAGE))
        transcript = await collect(stream, deadline_s=timeout(60))
    assert transcript.kinds()[-1] == "done"
    check_timeline(transcript)
    check_segments_cover(transcript.segments, PASSAGE)
    pcm = transcript.pcm()
    duration = len(pcm) / 24000
    words = len(PASSAGE.split())
    assert 0.2 < duration / words < 0.6, f"{duration:.1f} s for {words} words"
    loud = np.sqrt(np.mean(pcm**2))
    assert loud > 0.03, "not silence"
    heard = transcribe(pcm, 24000)
    assert word_error_rate(PASSAGE, heard) < 0.1, heard
    done = transcript.done
    assert done is not None
    assert done.metrics["chars_received"] == len(PASSAGE)
    assert done.metrics["chars_spoken"] == len(PASSAGE)
    assert done.metrics["chars_unspoken"] == 0
    assert done.metrics["frames"] == len(transcript.audio)


async def test_message_order_per_segment(server: RunningServer) -> None:
    text = "First sentence here. Second one, right after. Third."
    async with connect(server.ws_url, short_first_segment=False) as stream:
        stream.feed([text])
        transcript = await collect(stream, deadline_s=timeout(30))
    kinds = transcript.kinds()
    assert kinds[0] == "segment_start"
    assert kinds[-1] == "done"
    # Each segment: segment_start, its words (one message per decoded window that ends words),
    # its audio, then segment_end; progress around.
    structure = [k for k in kinds if k in ("segment_start", "words", "segment_end")]
    collapsed = [k for i, k in enumerate(structure) if k != "words" or structure[i - 1] != k]
    assert collapsed == ["segment_start", "words", "segment_end"] * len(transcript.segments)
    for start in (i for i, k in enumerate(kinds) if k == "segment_start"):
        following = kinds[start:]
        assert following.index("words") < following.index("audio")
    events = [m.event for m in transcript.of(Progress)]
    segments = len(transcript.segments)
    assert events.count("synthesis_started") == events.count("segment_done") == segments
    assert events.count("first_audio") == segments
    # Sentences, possibly joined into larger calls as audio buffers up (adaptive chunking).
    assert "".join(s.text for s in transcript.segments) == text
    assert transcript.segments[0].text == "First sentence here."
    assert all(s.boundary == "sentence" for s in transcript.segments)
    check_timeline(transcript)


async def test_pcm16_format(server: RunningServer) -> None:
    async with connect(server.ws_url, format="pcm16", voice="jm_kumo") as stream:
        assert stream.ready.preskip == 0
        assert stream.ready.bitrate is None
        stream.feed(["Raw samples, please."])
        transcript = await collect(stream, deadline_s=timeout(30))
    assert all(len(a.data) == 960 for a in transcript.audio)
    heard = transcribe(transcript.pcm(), 24000)
    assert word_error_rate("Raw samples, please.", heard) <= 0.34, heard


async def test_flush_is_answered_after_its_audio(server: RunningServer) -> None:
    async with connect(server.ws_url, short_first_segment=False) as stream:
        await stream.send_text("Speak this part now")  # no punctuation: only a flush releases it
        await stream.flush("f1")
        part = await collect(stream, deadline_s=timeout(30), until=Flushed)
        await stream.send_text(" and then the rest.")
        await stream.end()
        rest = await collect(stream, deadline_s=timeout(30))
    flushed = part.messages[-1]
    assert isinstance(flushed, Flushed)
    assert flushed.id == "f1"
    assert not flushed.cancelled
    assert [s.text for s in part.segments] == ["Speak this part now"]
    assert part.segments[0].released_by == "flush"
    assert part.audio
    assert flushed.sample_end == len(part.audio) * part.ready.frame_samples
    check_timeline(part)
    assert [s.text for s in rest.segments] == [" and then the rest."]
    assert rest.audio[0].seq == len(part.audio)  # one timeline across the flush


async def test_cancel_stops_audio_and_the_next_turn_plays(server: RunningServer) -> None:
    long_text = " ".join([PASSAGE] * 3)
    async with connect(server.ws_url) as stream:
        await stream.send_text(long_text)
        await stream.flush()
        first_audio = None
        async with asyncio.timeout(timeout(30)):
            while first_audio is None:
                message = await stream.receive()
                if isinstance(message, Audio):
                    first_audio = message
        await stream.cancel("barge")
        before_ack: list[object] = []
        async with asyncio.timeout(timeout(10)):
            while True:
                message = await stream.receive()
                if isinstance(message, Cancelled):
                    cancelled = message
                    break
                before_ack.append(message)
        assert cancelled.id == "barge"
        assert cancelled.unspoken_end == len(long_text)
        assert long_text[cancelled.unspoken_start :] == cancelled.unspoken_text
        assert 0 <= cancelled.unspoken_start < len(long_text) // 2
        # Nothing arrives after the acknowledgement until there is new text.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await stream.receive()
        await stream.send_text("A new turn.")
        await stream.end()
        after = await collect(stream, deadline_s=timeout(30))
    new_audio = after.audio
    assert new_audio
    assert new_audio[0].sample_start >= cancelled.sample_end
    assert [s.text for s in after.segments] == ["A new turn."]
    done = after.done
    assert done is not None
    metrics = done.metrics
    assert metrics["chars_spoken"] + metrics["chars_unspoken"] == metrics["chars_received"]
    assert metrics["chars_unspoken"] == cancelled.unspoken_end - cancelled.unspoken_start
    heard = transcribe(after.pcm(), 24000)
    assert word_error_rate("A new turn.", heard) <= 0.34, heard


async def test_segment_messages_report_offsets_into_the_client_text(
    server: RunningServer,
) -> None:
    text = "Dr. Smith paid $4.50 for v2.0.1, e.g. the U.S. version. Done!"
    async with connect(server.ws_url) as stream:
        stream.feed(llm_tokens(text))
        transcript = await collect(stream, deadline_s=timeout(30))
    check_segments_cover(transcript.segments, text)
    ends = [m for m in transcript.messages if isinstance(m, SegmentEnd)]
    starts = [m for m in transcript.messages if isinstance(m, SegmentStart)]
    assert len(ends) == len(starts) >= 2
    assert isinstance(transcript.messages[-1], Done)
