"""The ElevenLabs backend against a loopback server implementing the documented API.

The server (tests/fake_elevenlabs.py) speaks with the tone backend and reports evenly spread
character timings, which it records, so the word timings can be checked exactly. A fake,
because the real service needs an account.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

import pytest

from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest, WordTiming
from gateway.backends.elevenlabs import ElevenLabsBackend
from gateway.backends.settings import ElevenLabsSettings, ElevenLabsTransport
from gateway.core.segmenter import Boundary
from tests.conftest import timeout
from tests.fake_elevenlabs import (
    CloseAfter,
    FakeElevenLabs,
    Reject,
    RepeatAlignment,
    SlowFirst,
)
from tests.fakes import ToneBackend
from tests.servers import (
    FaultInjector,
    ServedApp,
    Status,
    drain_into,
    eventually,
    serve_app,
    unused_port,
)

KEY = "xi-test-key"
TEXT = "Hello there, small world. Again!"


@dataclasses.dataclass
class Service:
    fake: FakeElevenLabs
    faults: FaultInjector
    app: ServedApp

    @property
    def url(self) -> str:
        return self.app.url


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    tone = ToneBackend("tone")
    await tone.load()
    fake = FakeElevenLabs(tone, api_key=KEY, voices={"voice-a": "tone", "voice-b": "tone2"})
    faults = FaultInjector(fake.app(), "/v1/text-to-speech/")
    app = await serve_app(faults)
    yield Service(fake, faults, app)
    await app.stop()


def settings(url: str, **changes: object) -> ElevenLabsSettings:
    base = ElevenLabsSettings(
        base_url=url,
        api_key=KEY,
        default_voice="voice-a",
        backoff_base_s=0.01,
        backoff_max_s=0.02,
        first_byte_timeout_s=timeout(5),
        read_timeout_s=timeout(5),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def backend(url: str, **changes: object) -> AsyncIterator[ElevenLabsBackend]:
    instance = ElevenLabsBackend("elevenlabs", settings(url, **changes))
    try:
        await instance.load()
        yield instance
    finally:
        await instance.aclose()


async def speak(
    instance: ElevenLabsBackend, text: str = TEXT, *, speed: float = 1.0
) -> list[AudioChunk]:
    async with asyncio.timeout(timeout(20)):
        request = SynthesisRequest(text, "voice-a", "en-us", speed)
        return [chunk async for chunk in instance.synthesize(request)]


def words_of(chunks: list[AudioChunk]) -> list[WordTiming]:
    return [w for c in chunks for w in c.words]


def expected_words(fake: FakeElevenLabs, text: str) -> list[tuple[str, int]]:
    """(word, first sample) from the character timings the server reported last."""
    spoken = fake.spoken[-1]
    sent = "".join(c.char for c in spoken)
    offset = text.index(sent.strip())  # what was sent is the request text, stripped
    out = []
    for word in ("Hello", "there", "small", "world", "Again"):
        at = text.index(word) - offset
        out.append((word, round(spoken[at].start_s * 24000)))
    return out


async def test_websocket_protocol_and_word_timings(service: Service) -> None:
    async with backend(service.url, chunk_length_schedule=(50, 120)) as instance:
        chunks = await speak(instance, speed=1.1)
    opened = service.fake.opened[-1]
    assert opened["query"] == {"model_id": "eleven_flash_v2_5", "output_format": "pcm_24000"}
    assert opened["bos"] == {
        "text": " ",
        "voice_settings": {
            "stability": 0.5,
            "similarity_boost": 0.75,
            "style": 0.0,
            "use_speaker_boost": True,
            "speed": 1.1,
        },
        "generation_config": {"chunk_length_schedule": [50, 120]},
        "xi-api-key": KEY,
    }
    assert service.fake.texts == [TEXT + " "]  # text (ending in a space) with flush, then end
    assert chunks[-1].piece_end is Boundary.SENTENCE
    assert sum(len(c.pcm) for c in chunks) > 24000 * 0.5
    words = words_of(chunks)
    assert [TEXT[w.char_start : w.char_end] for w in words] == [
        "Hello", "there", "small", "world", "Again",
    ]  # fmt: skip
    starts = [(TEXT[w.char_start : w.char_end], w.sample_start) for w in words]
    for (word, got), (_, want) in zip(starts, expected_words(service.fake, TEXT), strict=True):
        assert abs(got - want) <= 48, word  # the server reports whole milliseconds
    assert all(w.sample_start < w.sample_end for w in words)
    assert words[-1].sample_end <= sum(len(c.pcm) for c in chunks)


async def test_words_come_no_later_than_the_audio_that_ends_them(service: Service) -> None:
    service.fake.chunk_s = 0.1  # many small messages; words span several
    async with backend(service.url) as instance:
        chunks = await speak(instance)
    received = 0
    for chunk in chunks:
        received += len(chunk.pcm)
        for word in chunk.words:
            assert word.sample_start < received or chunk.piece_end is not None
    assert len(words_of(chunks)) == 5


async def test_offsets_point_into_the_request_text_with_leading_space(service: Service) -> None:
    text = "  Hello there, small world. Again!"
    async with backend(service.url) as instance:
        chunks = await speak(instance, text=text)
    assert [text[w.char_start : w.char_end] for w in words_of(chunks)][:2] == ["Hello", "there"]


async def test_normalized_alignment_is_used_when_it_is_the_only_one(service: Service) -> None:
    service.fake.original_alignment = False
    async with backend(service.url) as instance:
        chunks = await speak(instance)
    got = [(TEXT[w.char_start : w.char_end], w.sample_start) for w in words_of(chunks)]
    for (word, start), (_, want) in zip(got, expected_words(service.fake, TEXT), strict=True):
        assert abs(start - want) <= 48, word


async def test_a_repeated_alignment_pass_does_not_disturb_the_words(service: Service) -> None:
    service.fake.ws_faults.append(RepeatAlignment())
    service.fake.chunk_s = 0.15
    async with backend(service.url) as instance:
        chunks = await speak(instance)
    got = [(TEXT[w.char_start : w.char_end], w.sample_start) for w in words_of(chunks)]
    for (word, start), (_, want) in zip(got, expected_words(service.fake, TEXT), strict=True):
        assert abs(start - want) <= 48, word


async def test_bad_key_is_not_retried_and_names_the_variable(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "xi-wrong")
    async with backend(service.url, api_key="", list_voices=False) as instance:
        instance.sleep = _no_sleep
        with pytest.raises(BackendError) as caught:
            await speak(instance)
    message = str(caught.value)
    assert "Invalid API key" in message
    assert "the API key from $ELEVENLABS_API_KEY was refused" in message
    assert "xi-wrong" not in message
    assert len(service.fake.opened) == 1
    monkeypatch.delenv("ELEVENLABS_API_KEY")
    with pytest.raises(BackendError, match="no API key is configured; set ELEVENLABS_API_KEY"):
        async with backend(service.url, api_key=""):  # listing voices needs the key too
            pass


async def test_handshake_refusals(service: Service) -> None:
    service.fake.ws_faults.extend([Reject(429), Reject(503)])
    async with backend(service.url) as instance:
        instance.sleep = _no_sleep
        assert len(words_of(await speak(instance))) == 5  # third attempt
        service.fake.ws_faults.append(Reject(401, {"detail": {"message": "Unauthorized"}}))
        with pytest.raises(BackendError, match="HTTP 401: Unauthorized"):
            await speak(instance)
        assert not instance.use_http


async def test_a_close_before_audio_is_retried_and_after_audio_is_an_error(
    service: Service,
) -> None:
    service.fake.chunk_s = 0.1
    service.fake.ws_faults.append(CloseAfter(0, 1011, "internal error"))
    async with backend(service.url) as instance:
        instance.sleep = _no_sleep
        assert len(words_of(await speak(instance))) == 5
        assert len(service.fake.opened) == 2
        service.fake.ws_faults.append(CloseAfter(2, 1011, "internal error"))
        received: list[AudioChunk] = []
        stream = instance.synthesize(SynthesisRequest(TEXT, "voice-a", "en-us", 1))
        with pytest.raises(BackendError, match="closed the stream after part of the audio"):
            await drain_into(received, stream)
        assert len(received) == 2
        assert len(service.fake.opened) == 3, "no retry once audio was delivered"


async def test_a_missing_final_message_is_a_cut_stream(service: Service) -> None:
    service.fake.ws_faults.append(CloseAfter(10_000, 1000, ""))  # all audio, then no isFinal
    async with backend(service.url, max_attempts=1) as instance:
        with pytest.raises(
            BackendError, match=r"closed the stream after part of the audio \(code 1000"
        ):
            await speak(instance)


async def test_slow_first_audio_times_out(service: Service) -> None:
    service.fake.ws_faults.append(SlowFirst(5))
    async with backend(service.url, first_byte_timeout_s=0.3) as instance:
        with pytest.raises(BackendError, match=r"sent no audio within 0\.3 s"):
            await speak(instance)


async def test_falls_back_to_http_streaming_when_the_websocket_is_refused(
    service: Service,
) -> None:
    service.fake.ws_faults.append(Reject(404))
    async with backend(service.url) as instance:
        chunks = await speak(instance)
        assert instance.use_http
        request = service.faults.requests[-1]
        assert request.path == "/v1/text-to-speech/voice-a/stream/with-timestamps"
        assert request.headers["xi-api-key"] == KEY
        assert request.json()["text"] == TEXT
        got = [(TEXT[w.char_start : w.char_end], w.sample_start) for w in words_of(chunks)]
        for (word, start), (_, want) in zip(got, expected_words(service.fake, TEXT), strict=True):
            assert abs(start - want) <= 48, word
    service.fake.ws_faults.append(Reject(404))
    async with backend(service.url, http_fallback=False) as instance:
        with pytest.raises(BackendError, match="set http_fallback = true"):
            await speak(instance)


async def test_http_transport_failures(service: Service) -> None:
    async with backend(service.url, transport=ElevenLabsTransport.HTTP) as instance:
        instance.sleep = _no_sleep
        service.faults.add(Status(500), Status(429, retry_after="0"))
        assert len(words_of(await speak(instance))) == 5
        assert len(service.faults.requests) == 3
        service.faults.add(
            Status(401, {"detail": {"status": "quota_exceeded", "message": "0 credits left"}})
        )
        with pytest.raises(BackendError, match=r"quota is exhausted .*0 credits left"):
            await speak(instance)
        assert not service.fake.opened


async def test_voices_are_listed_and_speed_is_checked(service: Service) -> None:
    async with backend(service.url, voices=("my-voice",)) as instance:
        assert [v.id for v in instance.voices()] == ["voice-a", "voice-b", "my-voice"]
        with pytest.raises(BackendError, match=r"speed 1\.5 is outside ElevenLabs' range 0\.7 to"):
            await speak(instance, speed=1.5)


async def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    async with backend(url, list_voices=False) as instance:
        with pytest.raises(BackendError, match="cannot connect to ElevenLabs at"):
            await speak(instance)


async def test_closing_the_stream_closes_the_websocket(service: Service) -> None:
    service.fake.chunk_s = 0.05
    service.fake.pace_s = 0.05
    async with backend(service.url) as instance:
        stream = instance.synthesize(SynthesisRequest(TEXT * 4, "voice-a", "en-us", 1.0))
        assert len((await anext(stream)).pcm) > 0
        await stream.aclose()
        await eventually(lambda: service.fake.closed_by_client == 1, deadline_s=timeout(5))


async def _no_sleep(_: float) -> None:
    return None


async def test_the_key_never_reaches_the_logs(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with backend(service.url) as instance:
            await speak(instance)
            service.fake.ws_faults.append(Reject(404))
            await speak(instance)  # HTTP, with the key in a header
    assert len(caplog.records) > 3
    assert not [r for r in caplog.records if KEY in r.getMessage()]
