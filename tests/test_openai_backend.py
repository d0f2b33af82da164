"""The OpenAI backend against an OpenAI-compatible server on loopback, with injected faults.

The server is tests/openai_compatible_server.py over the tone backend (fast and deterministic);
tests/test_remote_speech.py runs the same backend against real Kokoro. Faults (error statuses,
slow first byte, cut and stalled bodies) are injected by tests/servers.py in front of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest
from gateway.backends.openai_speech import OpenAIBackend
from gateway.backends.settings import OpenAISettings
from gateway.core.segmenter import Boundary
from tests.conftest import timeout
from tests.fakes import ToneBackend
from tests.openai_compatible_server import openai_compatible_app
from tests.servers import (
    Cut,
    FaultInjector,
    ServedApp,
    SlowFirstByte,
    Stall,
    Status,
    drain_into,
    eventually,
    serve_app,
    unused_port,
)
from tests.streams import spoken_in_calls

KEY = "sk-test-0123456789abcdef"
TEXT = "One two three. Four five."


@dataclasses.dataclass
class Provider:
    app: ServedApp
    faults: FaultInjector
    tone: ToneBackend

    @property
    def url(self) -> str:
        return self.app.url

    @property
    def streams(self) -> list[str]:
        return self.faults.app.state.streams  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    tone = ToneBackend("tone", chunk_delay_s=0.002)
    await tone.load()
    faults = FaultInjector(openai_compatible_app({"tone": tone}, api_key=KEY), "/v1/audio/")
    app = await serve_app(faults)
    yield Provider(app, faults, tone)
    await app.stop()


def settings(url: str, **changes: object) -> OpenAISettings:
    base = OpenAISettings(
        base_url=url,
        api_key=KEY,
        model="tone",
        voices=("tone", "tone2"),
        default_voice="tone",
        first_byte_timeout_s=timeout(2),
        read_timeout_s=timeout(2),
        backoff_base_s=0.01,
        backoff_max_s=0.02,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


class Sleeps:
    """Records the backoff waits instead of sleeping them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.waits.append(delay)


@contextlib.asynccontextmanager
async def backend(url: str, **changes: object) -> AsyncIterator[OpenAIBackend]:
    instance = OpenAIBackend("openai", settings(url, **changes))
    try:
        await instance.load()
        yield instance
    finally:
        await instance.aclose()


async def speak(instance: OpenAIBackend, text: str = TEXT, **request: object) -> list[AudioChunk]:
    values: dict[str, object] = {"voice": "tone", "lang": "en-us", "speed": 1.0, **request}
    req = SynthesisRequest(text, str(values["voice"]), str(values["lang"]), float(values["speed"]))  # type: ignore[arg-type]
    async with asyncio.timeout(timeout(20)):
        return await spoken_in_calls(instance, req)


def samples(chunks: list[AudioChunk]) -> int:
    return sum(len(c.pcm) for c in chunks)


async def reference_samples(tone: ToneBackend, text: str = TEXT) -> int:
    request = SynthesisRequest(text.strip(), "tone", "en-us", 1.0)
    return sum([len(c.pcm) async for c in tone.synthesize(request)])


async def test_streams_the_servers_pcm_and_sends_the_documented_request(
    provider: Provider,
) -> None:
    async with backend(provider.url, model="tone") as instance:
        chunks = await speak(instance, speed=1.25)
    expected = await reference_samples(provider.tone)
    assert samples(chunks) == expected
    assert len(chunks) > 2, "streamed in several chunks"
    assert chunks[-1].piece_end is Boundary.SENTENCE
    assert all(c.piece_end is None for c in chunks[:-1])
    request = provider.faults.requests[-1]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": "tone",
        "input": TEXT,
        "voice": "tone",
        "response_format": "pcm",
        "speed": 1.25,
    }
    assert provider.streams == ["complete"]


async def test_instructions_go_only_to_models_that_take_them(provider: Provider) -> None:
    tone_app = provider.faults.app
    tone_app.state.requests.clear()  # type: ignore[attr-defined]
    async with backend(provider.url, instructions="Speak calmly.") as instance:
        await speak(instance)
    assert provider.faults.requests[-1].json()["instructions"] == "Speak calmly."
    with pytest.raises(ValueError, match="does not take instructions"):
        OpenAISettings(model="tts-1", instructions="Speak calmly.")
    async with backend(provider.url) as instance:
        await speak(instance)
    assert "instructions" not in provider.faults.requests[-1].json()
    # A request's own instructions (from a REST request) win over the configured ones...
    async with backend(provider.url, instructions="Speak calmly.") as instance:
        req = SynthesisRequest(TEXT, "tone", "en-us", 1.0, instructions="Whisper.")
        async with asyncio.timeout(timeout(20)):
            assert [chunk async for chunk in instance.synthesize(req)]
    assert provider.faults.requests[-1].json()["instructions"] == "Whisper."
    # ...and are not sent to a model that does not take them (the test server has no tts-1).
    async with backend(provider.url, model="tts-1") as instance:
        req = SynthesisRequest(TEXT, "tone", "en-us", 1.0, instructions="Whisper.")
        with pytest.raises(BackendError, match="'tts-1' does not exist"):
            await drain_into([], instance.synthesize(req))
    assert provider.faults.requests[-1].json()["model"] == "tts-1"
    assert "instructions" not in provider.faults.requests[-1].json()


async def test_key_comes_from_the_environment(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_TTS_KEY", KEY)
    async with backend(provider.url, api_key="", api_key_env="MY_TTS_KEY") as instance:
        assert samples(await speak(instance)) > 0
    assert provider.faults.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_bad_or_missing_key_is_not_retried_and_names_the_variable(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with backend(provider.url, api_key="") as instance:
        with pytest.raises(BackendError) as missing:
            await speak(instance)
    assert "HTTP 401" in str(missing.value)
    assert "no API key is configured; set OPENAI_API_KEY or backends.openai.api_key" in str(
        missing.value
    )
    assert len(provider.faults.requests) == 1
    wrong = "sk-wrong-key-987654321"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    async with backend(provider.url, api_key="") as instance:
        with pytest.raises(BackendError) as refused:
            await speak(instance)
    assert "the API key from $OPENAI_API_KEY was refused" in str(refused.value)
    assert wrong not in str(refused.value)  # the server echoed it; it is redacted
    assert len(provider.faults.requests) == 2
    provider.faults.add(Status(403, {"error": {"message": "Project not allowed"}}))
    async with backend(provider.url) as instance:
        with pytest.raises(BackendError, match="HTTP 403: Project not allowed"):
            await speak(instance)
    assert len(provider.faults.requests) == 3


async def test_429_is_retried_after_retry_after(provider: Provider) -> None:
    provider.faults.add(Status(429, {"error": {"message": "Rate limit"}}, retry_after="2"))
    async with backend(provider.url) as instance:
        instance.sleep = sleeps = Sleeps()
        chunks = await speak(instance)
    assert samples(chunks) == await reference_samples(provider.tone)
    assert len(provider.faults.requests) == 2
    assert len(sleeps.waits) == 1
    assert 2.0 <= sleeps.waits[0] <= 2.2


async def test_500_then_success_gives_the_audio_once(provider: Provider) -> None:
    provider.faults.add(Status(500), Status(502))
    async with backend(provider.url) as instance:
        instance.sleep = sleeps = Sleeps()
        chunks = await speak(instance)
    assert samples(chunks) == await reference_samples(provider.tone)
    assert len(provider.faults.requests) == 3
    assert len(sleeps.waits) == 2
    assert all(0.005 <= w <= 0.02 for w in sleeps.waits)


async def test_retries_are_bounded(provider: Provider) -> None:
    provider.faults.add(Status(503), Status(503), Status(503), Status(503))
    async with backend(provider.url, max_attempts=3) as instance:
        instance.sleep = Sleeps()
        with pytest.raises(BackendError, match=r"HTTP 503.*gave up after 3 attempts"):
            await speak(instance)
    assert len(provider.faults.requests) == 3


async def test_retry_after_beyond_the_limit_fails_at_once(provider: Provider) -> None:
    provider.faults.add(Status(429, retry_after="120"))
    async with backend(provider.url, max_retry_after_s=30.0) as instance:
        instance.sleep = sleeps = Sleeps()
        with pytest.raises(BackendError, match="asks to retry after 120 s"):
            await speak(instance)
    assert sleeps.waits == []


async def test_a_stream_cut_mid_way_is_an_error_and_not_repeated(provider: Provider) -> None:
    provider.faults.add(Cut(after_bytes=12000))
    async with backend(provider.url) as instance:
        received: list[AudioChunk] = []
        req = SynthesisRequest(TEXT, "tone", "en-us", 1.0)
        with pytest.raises(BackendError, match="closed the connection in the middle"):
            await drain_into(received, instance.synthesize(req))
    assert 0 < samples(received) <= 6000
    assert len(provider.faults.requests) == 1, "audio was delivered: no retry, no duplicate"


async def test_a_cut_before_any_audio_is_retried(provider: Provider) -> None:
    provider.faults.add(Cut(after_bytes=100))  # less than one chunk reached the caller
    async with backend(provider.url) as instance:
        instance.sleep = Sleeps()
        chunks = await speak(instance)
    assert samples(chunks) == await reference_samples(provider.tone)
    assert len(provider.faults.requests) == 2


async def test_slow_first_byte_and_stalled_stream_time_out(provider: Provider) -> None:
    provider.faults.add(SlowFirstByte(delay_s=5))
    async with backend(provider.url, first_byte_timeout_s=0.3) as instance:
        with pytest.raises(BackendError, match=r"sent no audio within 0\.3 s"):
            await speak(instance)
    provider.faults.add(Stall(after_bytes=4000))
    async with backend(provider.url, read_timeout_s=0.3) as instance:
        with pytest.raises(BackendError, match=r"stalled: no audio for 0\.3 s"):
            await speak(instance)


async def test_connection_refused_says_where() -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    async with backend(url) as instance:
        with pytest.raises(BackendError, match=f"cannot connect to OpenAI at {url}"):
            await speak(instance)


async def test_text_over_the_input_limit_goes_out_in_parts(provider: Provider) -> None:
    sentence = "Alpha beta gamma delta epsilon. "
    text = sentence * 8  # 256 characters
    async with backend(provider.url, max_input_chars=100) as instance:
        chunks = await speak(instance, text=text)
    inputs = [r.json()["input"] for r in provider.faults.requests]
    assert len(inputs) == 3
    assert all(len(i) <= 100 and i.endswith(".") for i in inputs)
    assert " ".join(inputs).split() == text.split()
    ends = [c.piece_end for c in chunks if c.piece_end is not None]
    assert ends == [Boundary.SENTENCE] * 3
    assert samples(chunks) == await reference_samples(provider.tone, text)


async def test_closing_the_stream_closes_the_http_response(provider: Provider) -> None:
    provider.tone.chunk_delay_s = 0.05
    long_text = "word " * 200
    async with backend(provider.url) as instance:
        stream = instance.synthesize(SynthesisRequest(long_text, "tone", "en-us", 1.0))
        first = await anext(stream)
        assert len(first.pcm) > 0
        await stream.aclose()
        await eventually(lambda: provider.streams == ["aborted"], deadline_s=timeout(5))
    assert provider.tone.active == 0, "the server stopped synthesizing"


class AskForWav:
    """Middleware: turns every speech request into one for WAV (a server that ignores pcm)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/audio/speech":
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        data = json.dumps({**json.loads(body), "response_format": "wav"}).encode()
        first = True

        async def replay() -> Message:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def test_wav_answers_are_read_and_other_formats_refused() -> None:
    tone = ToneBackend("tone")
    await tone.load()
    app = openai_compatible_app({"tone": tone})
    wav = await serve_app(AskForWav(app))
    try:
        async with backend(wav.url, api_key="") as instance:
            chunks = await speak(instance)
        assert samples(chunks) == await reference_samples(tone)
    finally:
        await wav.stop()
    not_audio = FaultInjector(app, "/v1/audio/")
    not_audio.add(Status(200, {"not": "audio"}))
    served_json = await serve_app(not_audio)
    try:
        async with backend(served_json.url, api_key="") as instance:
            with pytest.raises(BackendError, match="'application/json', not raw PCM"):
                await speak(instance)
    finally:
        await served_json.stop()


async def test_voices_can_be_listed_from_the_server(provider: Provider) -> None:
    async with backend(provider.url, list_voices=True, voices=()) as instance:
        assert [v.id for v in instance.voices()] == ["tone", "tone2"]
    with pytest.raises(BackendError, match="default_voice 'alloy' is not offered"):
        async with backend(provider.url, list_voices=True, default_voice="alloy"):
            pass


async def test_unsupported_language_and_unloaded_backend() -> None:
    instance = OpenAIBackend("openai", settings("http://127.0.0.1:9"))
    with pytest.raises(BackendError, match="not loaded"):
        await speak(instance)
    await instance.load()
    with pytest.raises(BackendError, match="language 'tlh' is not supported"):
        await speak(instance, lang="tlh")
    await instance.aclose()


async def test_the_key_never_reaches_the_logs(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    provider.faults.add(Status(500))
    with caplog.at_level(logging.DEBUG):
        async with backend(provider.url) as instance:
            instance.sleep = Sleeps()
            await speak(instance)
    assert len(caplog.records) > 3
    assert not [r for r in caplog.records if KEY in r.getMessage()]


async def test_no_key_for_the_real_openai_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    instance = OpenAIBackend("openai", OpenAISettings())
    with pytest.raises(BackendError, match="no API key for OpenAI; set OPENAI_API_KEY"):
        await instance.load()
    await instance.aclose()
