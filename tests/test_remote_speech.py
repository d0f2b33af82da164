"""Remote backends with real speech end to end: the provider is our own server over real Kokoro.

The OpenAI backend talks to a second gateway's own ``POST /v1/audio/speech`` (and
``GET /v1/audio/voices``) running the real Kokoro backend; the AllTalk backend to AllTalk's API
served by tests/openai_compatible_server.py over Kokoro (WAV at 22050 Hz, like an engine that is
not 24 kHz); the ElevenLabs backend to the fake service speaking with Kokoro. Offline Whisper
checks that the audio says the text. Then a gateway session streams through a remote backend
like a local one, and a failing remote backend reaches the client as an error envelope while the
session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest

from gateway.backends.alltalk import AllTalkBackend
from gateway.backends.base import AudioChunk, Backend, SynthesisRequest
from gateway.backends.elevenlabs import ElevenLabsBackend
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.openai_speech import OpenAIBackend
from gateway.backends.settings import AllTalkSettings, ElevenLabsSettings, OpenAISettings
from gateway.config import AuthRequired, AuthSettings
from gateway.core.protocol import Done, Error
from tests.asr import transcribe, word_error_rate
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.fake_elevenlabs import FakeElevenLabs
from tests.fakes import ToneBackend
from tests.openai_compatible_server import alltalk_app
from tests.servers import served
from tests.streams import check_timeline, collect, errors
from tts_gateway_client import connect

pytestmark = pytest.mark.model

TEXT = "The quick brown fox jumps over the lazy dog. Then it runs home."


async def speak(backend: Backend, text: str, voice: str, lang: str) -> list[AudioChunk]:
    async with asyncio.timeout(timeout(60)):
        request = SynthesisRequest(text, voice, lang, 1.0)
        return [chunk async for chunk in backend.synthesize(request)]


def pcm(chunks: list[AudioChunk]) -> np.ndarray:
    return np.concatenate([c.pcm for c in chunks])


@contextlib.asynccontextmanager
async def loaded(
    backend: OpenAIBackend | AllTalkBackend | ElevenLabsBackend,
) -> AsyncIterator[None]:
    try:
        await backend.load()
        yield
    finally:
        await backend.aclose()


async def test_openai_backend_speaks_real_kokoro(server: RunningServer) -> None:
    """The gateway's own REST API is the OpenAI-compatible server (the shared one: Kokoro)."""
    backend = OpenAIBackend(
        "openai",
        OpenAISettings(base_url=server.http_url, model="kokoro", list_voices=True, voices=(),
                       default_voice="jf_gongitsune"),
    )  # fmt: skip
    async with loaded(backend):
        assert {v.id for v in backend.voices()} == {
            v.id for v in server.gateway.backends["kokoro"].voices()
        }
        chunks = await speak(backend, TEXT, "jm_kumo", "en-us")
    audio = pcm(chunks)
    assert 2.0 < len(audio) / 24000 < 8.0
    heard = transcribe(audio, 24000)
    assert word_error_rate(TEXT, heard) <= 0.1, heard


async def test_alltalk_backend_speaks_real_kokoro_at_another_rate(
    kokoro: KokoroOnnxBackend,
) -> None:
    voice_map = {"alloy": "jf_gongitsune", "onyx": "jm_kumo"}
    app = alltalk_app(kokoro, voice_map=voice_map, output_rate=22050, unready_polls=1)
    async with served(app) as server:
        backend = AllTalkBackend(
            "alltalk_kokoro", AllTalkSettings(base_url=server.url, voice_map=voice_map)
        )
        async with loaded(backend):
            chunks = await speak(backend, TEXT, "jm_kumo", "en")
    assert app.state.alltalk["requests"][-1]["voice"] == "onyx"
    audio = pcm(chunks)
    heard = transcribe(audio, 24000)
    assert word_error_rate(TEXT, heard) <= 0.1, heard


async def test_elevenlabs_backend_speaks_real_kokoro_with_word_timings(
    kokoro: KokoroOnnxBackend,
) -> None:
    fake = FakeElevenLabs(kokoro, api_key="xi-key", voices={"kokoro-voice": "jf_gongitsune"})
    async with served(fake.app()) as server:
        backend = ElevenLabsBackend(
            "elevenlabs",
            ElevenLabsSettings(base_url=server.url, api_key="xi-key", default_voice="kokoro-voice"),
        )
        async with loaded(backend):
            chunks = await speak(backend, TEXT, "kokoro-voice", "en-us")
    audio = pcm(chunks)
    heard = transcribe(audio, 24000)
    assert word_error_rate(TEXT, heard) <= 0.1, heard
    words = [w for c in chunks for w in c.words]
    assert [TEXT[w.char_start : w.char_end] for w in words] == TEXT.replace(".", "").split()
    starts = [w.sample_start for w in words]
    assert starts == sorted(starts)
    assert words[-1].sample_end <= len(audio)


async def test_a_gateway_session_streams_through_a_remote_backend(server: RunningServer) -> None:
    """A session on one gateway, spoken by another gateway's REST API (real Kokoro); and one
    whose remote gateway refuses the key."""
    auth = AuthSettings(required=AuthRequired.YES, api_keys=("sk-right-0123456789",))
    keyed = await serve(repo_config(auth=auth), {"tone": ToneBackend("tone")})
    try:
        remote = OpenAIBackend(
            "openai",
            OpenAISettings(base_url=server.http_url, model="kokoro", voices=("jf_gongitsune",),
                           default_voice="jf_gongitsune"),
        )  # fmt: skip
        refused = OpenAIBackend(
            "openai_bad",
            OpenAISettings(base_url=keyed.http_url, api_key="sk-wrong", model="tone",
                           voices=("tone",), default_voice="tone"),
        )  # fmt: skip
        backends: dict[str, Backend] = {"openai": remote, "openai_bad": refused}
        gateway = await serve(repo_config(), backends, close_backends=True)
        try:
            async with connect(gateway.ws_url, backend="openai") as stream:
                stream.feed(
                    ["The quick brown fox ", "jumps over the lazy dog. ", "Then it runs home."]
                )
                transcript = await collect(stream, deadline_s=timeout(90))
            assert not errors(transcript)
            check_timeline(transcript)
            heard = transcribe(transcript.pcm(), 24000)
            assert word_error_rate(TEXT, heard) <= 0.1, heard

            async with connect(gateway.ws_url, backend="openai_bad") as stream:
                stream.feed(["First sentence. ", "Second one."])
                failed = await collect(stream, deadline_s=timeout(30))
            problems = errors(failed)
            assert len(problems) == 2  # one per segment; the session went on to the end
            for problem in problems:
                assert isinstance(problem, Error)
                assert problem.code == "backend_error"
                assert problem.message.startswith("openai_bad: OpenAI (")
                assert "HTTP 401" in problem.message
                assert "sk-wrong" not in problem.message
                assert not problem.fatal
            done = failed.done
            assert isinstance(done, Done)
            assert done.metrics["segments_failed"] == 2
            assert done.metrics["chars_unspoken"] == len("First sentence. Second one.")
        finally:
            await gateway.stop()
    finally:
        await keyed.stop()
