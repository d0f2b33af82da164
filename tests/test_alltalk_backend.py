"""The AllTalk backend against AllTalk's documented v2 API on loopback, with injected faults.

The server is ``alltalk_app`` from tests/openai_compatible_server.py over the tone backend; its
WAV comes back at 22050 Hz (like an engine that is not 24 kHz) unless a test says otherwise.
tests/test_remote_speech.py runs the same backend against real Kokoro.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest

from gateway.audio.resample import ResampledChunks
from gateway.backends import create_backend
from gateway.backends.alltalk import AllTalkBackend
from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest
from gateway.backends.settings import AllTalkSettings
from gateway.config import load_config
from gateway.core.segmenter import Boundary
from tests.conftest import timeout
from tests.fakes import ToneBackend
from tests.openai_compatible_server import alltalk_app
from tests.servers import Cut, FaultInjector, ServedApp, Status, serve_app, unused_port
from tests.streams import spoken_in_calls

TEXT = "One two three. Four five."
SERVER_MAP = {"alloy": "tone", "echo": "tone2", "nova": "tone2"}


@dataclasses.dataclass
class Server:
    app: ServedApp
    faults: FaultInjector
    tone: ToneBackend

    @property
    def url(self) -> str:
        return self.app.url

    @property
    def state(self) -> dict:  # type: ignore[type-arg]
        return self.faults.app.state.alltalk  # type: ignore[attr-defined,no-any-return]


async def start_server(*, output_rate: int | None = 22050, unready_polls: int = 0) -> Server:
    tone = ToneBackend("tone")
    await tone.load()
    app = alltalk_app(
        tone, voice_map=SERVER_MAP, output_rate=output_rate, unready_polls=unready_polls
    )
    faults = FaultInjector(app, "/v1/audio/speech")
    return Server(await serve_app(faults), faults, tone)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    running = await start_server()
    yield running
    await running.app.stop()


def settings(url: str, **changes: object) -> AllTalkSettings:
    base = AllTalkSettings(
        base_url=url,
        voice_map={"alloy": "tone", "nova": "tone2"},
        backoff_base_s=0.01,
        backoff_max_s=0.02,
        ready_timeout_s=timeout(10),
        first_byte_timeout_s=timeout(10),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def backend(url: str, **changes: object) -> AsyncIterator[AllTalkBackend]:
    instance = AllTalkBackend("alltalk_test", settings(url, **changes))
    try:
        await instance.load()
        yield instance
    finally:
        await instance.aclose()


async def speak(
    instance: AllTalkBackend, text: str = TEXT, voice: str = "alloy", lang: str = "en"
) -> list[AudioChunk]:
    """The backend's chunks as the pipeline plays them: in calls within the provider's limit,
    at 24 kHz through the one resampler (AllTalk's WAV arrives at the server's rate, which its
    chunks carry)."""
    async with asyncio.timeout(timeout(20)):
        request = SynthesisRequest(text, voice, lang, 1.0)
        chunks = await spoken_in_calls(instance, request)
        return [
            chunk async for chunk in ResampledChunks(_each(chunks), instance.sample_rate, 24000)
        ]


async def _each(chunks: list[AudioChunk]) -> AsyncIterator[AudioChunk]:
    for chunk in chunks:
        yield chunk


def samples(chunks: list[AudioChunk]) -> int:
    return sum(len(c.pcm) for c in chunks)


async def tone_samples(tone: ToneBackend, text: str = TEXT) -> int:
    return sum([len(c.pcm) async for c in tone.synthesize(SynthesisRequest(text, "tone", "en", 1))])


async def test_waits_until_alltalk_is_ready() -> None:
    running = await start_server(unready_polls=3)
    try:
        async with backend(running.url) as instance:
            assert instance.ready
            assert running.state["polls"] == 4
            assert instance.engine_voices == ["tone", "tone2"]
    finally:
        await running.app.stop()


async def test_not_ready_in_time_says_what_alltalk_reported() -> None:
    running = await start_server(unready_polls=10_000)
    try:
        with pytest.raises(BackendError, match=r"not ready after 1 s \(it reports 'Unloaded'\)"):
            async with backend(running.url, ready_timeout_s=1.0):
                pass
    finally:
        await running.app.stop()


async def test_not_running_says_so() -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    with pytest.raises(BackendError, match=f"AllTalk is not running at {url}"):
        async with backend(url, ready_timeout_s=0.3):
            pass


async def test_speaks_wav_resampled_to_24_khz_with_the_documented_request(server: Server) -> None:
    async with backend(server.url) as instance:
        chunks = await speak(instance, voice="tone2")  # an engine voice, mapped from "nova"
    expected = await tone_samples(server.tone)
    assert abs(samples(chunks) - expected) <= 48  # 24 kHz -> 22050 Hz -> 24 kHz
    assert chunks[-1].piece_end is Boundary.SENTENCE
    assert server.state["requests"][-1] == {
        "model": "tts-1",
        "input": TEXT,
        "voice": "nova",
        "response_format": "wav",
        "speed": 1.0,
        "language": "en",
    }


async def test_voices_are_the_openai_names_and_the_mapped_engine_voices(server: Server) -> None:
    async with backend(server.url, send_language=False) as instance:
        voices = {v.id: v.name for v in instance.voices()}
        assert voices["alloy"] == "alloy (tone)"
        assert voices["echo"] == "echo"
        assert set(voices) == {"alloy", "echo", "fable", "nova", "onyx", "shimmer", "tone", "tone2"}
        assert instance.openai_voice("tone") == "alloy"
        with pytest.raises(BackendError, match="'tone3' is neither"):
            await speak(instance, voice="tone3")
        await speak(instance, voice="echo")
    assert "language" not in server.state["requests"][-1]


async def test_a_mapped_voice_missing_on_the_server_fails_at_start(server: Server) -> None:
    with pytest.raises(BackendError, match=r"voice_map.alloy = 'gone.wav' is not a voice"):
        async with backend(server.url, voice_map={"alloy": "gone.wav"}):
            pass


async def test_voice_map_is_pushed_when_asked(server: Server) -> None:
    full = dict.fromkeys(("alloy", "echo", "fable", "nova", "onyx", "shimmer"), "tone2")
    async with backend(server.url, voice_map=full, push_voice_map=True, default_voice="tone2"):
        pass
    assert server.state["voice_map"] == full
    with pytest.raises(ValueError, match="must map all of"):
        settings(server.url, push_voice_map=True)


async def test_input_over_2000_characters_goes_out_in_parts(server: Server) -> None:
    text = "This sentence is here to fill the request up nicely. " * 45  # 2385 characters
    async with backend(server.url) as instance:
        chunks = await speak(instance, text=text)
    inputs = [r["input"] for r in server.state["requests"]]
    assert len(inputs) == 2
    assert all(len(i) <= 2000 for i in inputs)
    assert " ".join(inputs).split() == text.split()
    assert [c.piece_end for c in chunks if c.piece_end] == [Boundary.SENTENCE] * 2


async def test_500_then_success_and_a_cut_wav(server: Server) -> None:
    server.faults.add(Status(500, {"error": "An internal runtime error occurred"}))
    async with backend(server.url) as instance:
        instance.sleep = _no_sleep
        chunks = await speak(instance)
        assert samples(chunks) > 0
        assert len(server.faults.requests) == 2
        server.faults.add(Cut(after_bytes=5000), Cut(after_bytes=5000), Cut(after_bytes=5000))
        with pytest.raises(BackendError, match=r"AllTalk .* closed the connection in the middle"):
            await speak(instance)


async def test_bad_request_is_not_retried(server: Server) -> None:
    server.faults.add(Status(400, {"error": "Invalid value: Unsupported voice"}))
    async with backend(server.url) as instance:
        with pytest.raises(BackendError, match="HTTP 400: Invalid value: Unsupported voice"):
            await speak(instance)
    assert len(server.faults.requests) == 1


async def test_several_alltalk_servers_side_by_side(tmp_path: object) -> None:
    first = await start_server(output_rate=None)
    second = await start_server(output_rate=16000)
    try:
        from pathlib import Path

        path = Path(str(tmp_path)) / "config.toml"
        path.write_text(
            '[session]\ndefault_backend = "alltalk_a"\n'
            f'[backends.alltalk_a]\nkind = "alltalk"\nbase_url = "{first.url}"\n'
            'voice_map = { alloy = "tone" }\n'
            f'[backends.alltalk_b]\nkind = "alltalk"\nbase_url = "{second.url}"\n'
            'voice_map = { alloy = "tone2" }\ndefault_lang = "fr"\n'
        )
        config = load_config(path, environ={})
        backends = [create_backend(name, s) for name, s in config.backends.items()]
        try:
            for instance in backends:
                await instance.load()
            results = await asyncio.gather(
                *(_collect(instance, "alloy", instance.default_lang) for instance in backends)
            )
        finally:
            for instance in backends:
                await instance.aclose()
        expected = await tone_samples(first.tone)
        assert all(abs(samples(chunks) - expected) <= 48 for chunks in results)
        assert first.state["requests"][-1]["language"] == "en"
        assert second.state["requests"][-1]["language"] == "fr"
        assert len(first.state["requests"]) == len(second.state["requests"]) == 1
    finally:
        await first.app.stop()
        await second.app.stop()


async def _collect(instance: object, voice: str, lang: str) -> list[AudioChunk]:
    assert isinstance(instance, AllTalkBackend)
    return await speak(instance, TEXT, voice, lang)


async def _no_sleep(_: float) -> None:
    return None
