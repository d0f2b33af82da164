"""The OpenAI-compatible REST API with the official ``openai`` package, unchanged.

The package is pointed at a real gateway on loopback (``base_url``). Speech comes from the real
Kokoro model; the tone backend (tests/fakes.py) stands in where a test needs exact, repeatable
audio or injected failures. Every format is decoded with PyAV and checked with Whisper.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
from collections.abc import AsyncIterator, Mapping
from typing import Literal, get_args

import av
import httpx
import numpy as np
import openai
import pytest
from numpy.typing import NDArray
from openai import AsyncOpenAI

from gateway.backends.base import AudioChunk, BackendError, SynthesisRequest, Voice
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.config import AuthRequired, AuthSettings, RestSettings
from tests.asr import transcribe, word_error_rate
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.fakes import ToneBackend
from tests.servers import eventually

TEXT = "The quick brown fox jumps over the lazy dog. Then it runs home."
Format = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
FORMATS: tuple[Format, ...] = get_args(Format)
MEDIA_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
KEY = "rest-test-key-0123456789"


@contextlib.asynccontextmanager
async def client(server: RunningServer, *, api_key: str = "unused") -> AsyncIterator[AsyncOpenAI]:
    """The official client, as a user would point it at the gateway (no retries: one request
    per call, so the tests see each answer)."""
    async with AsyncOpenAI(
        base_url=f"{server.http_url}/v1", api_key=api_key, max_retries=0, timeout=timeout(60)
    ) as api:
        yield api


def decode(data: bytes, fmt: str) -> tuple[NDArray[np.float32], int]:
    """Mono float PCM and its rate, decoded by PyAV (raw PCM: as OpenAI documents it)."""
    if fmt == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, 24000
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts = [
            out.to_ndarray()[0]
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
    return np.concatenate(parts).astype(np.float32), rate


async def speech(
    server: RunningServer, *, api_key: str = "unused", **request: object
) -> tuple[bytes, Mapping[str, str]]:
    """One request through ``audio.speech.with_streaming_response.create``: the body, headers."""
    async with (
        client(server, api_key=api_key) as api,
        api.audio.speech.with_streaming_response.create(**request) as response,  # type: ignore[arg-type]
    ):
        data = b"".join([chunk async for chunk in response.iter_bytes()])
        return data, response.headers


@pytest.mark.model
@pytest.mark.parametrize("fmt", FORMATS)
async def test_the_openai_package_gets_speech_in_every_format(
    server: RunningServer, fmt: Format
) -> None:
    data, headers = await speech(
        server, model="kokoro", voice="jm_kumo", input=TEXT, response_format=fmt
    )
    assert headers["content-type"] == MEDIA_TYPES[fmt]
    assert headers["transfer-encoding"] == "chunked"
    assert headers["x-tts-backend"] == "kokoro"
    pcm, rate = decode(data, fmt)
    assert rate == (48000 if fmt == "opus" else 24000)  # libopus decodes at 48 kHz
    assert 2.0 < len(pcm) / rate < 8.0
    heard = transcribe(pcm, rate)
    assert word_error_rate(TEXT, heard) <= 0.1, heard


async def test_lossless_formats_carry_the_same_samples_as_pcm(server: RunningServer) -> None:
    """The tone backend is deterministic, so WAV and FLAC must decode to the PCM answer."""
    text = "One two three. Four five six seven."
    raw, _ = await speech(server, model="fake", voice="tone", input=text, response_format="pcm")
    reference = np.frombuffer(raw, "<i2")
    assert len(reference) > 24000 // 2
    for fmt in ("wav", "flac"):
        data, _ = await speech(server, model="fake", voice="tone", input=text, response_format=fmt)
        pcm, rate = decode(data, fmt)
        assert rate == 24000
        assert np.array_equal(np.rint(pcm * 32768).astype("<i2"), reference), fmt
    for fmt in ("mp3", "aac", "opus"):  # lossy: the same length, give or take codec padding
        data, _ = await speech(server, model="fake", voice="tone", input=text, response_format=fmt)
        pcm, rate = decode(data, fmt)
        assert abs(len(pcm) / rate - len(reference) / 24000) < 0.1, fmt


async def test_openai_model_names_mean_the_default_backend(server: RunningServer) -> None:
    for model in ("tts-1", "tts-1-hd", "gpt-4o-mini-tts"):
        data, headers = await speech(
            server, model=model, voice="jf_alpha", input="Hi.", response_format="wav"
        )
        assert headers["x-tts-backend"] == "kokoro"
        assert headers["x-tts-voice"] == "jf_alpha"
        assert len(data) > 44 + 2400


async def test_speed_instructions_and_the_voice_object_reach_the_backend() -> None:
    tone = ToneBackend("fake")
    gateway = await serve(repo_config(), {"kokoro": tone})
    try:
        await speech(gateway, model="tts-1", voice={"id": "tone2"}, input="Calm words.",
                     speed=1.5, instructions="Speak calmly.", response_format="pcm")  # fmt: skip
    finally:
        await gateway.stop()
    spoken = [r for r in tone.requests if r.text == "Calm words."]  # not a warm-up's
    assert [(r.voice, r.lang, r.speed, r.instructions) for r in spoken] == [
        ("tone2", "en-us", 1.5, "Speak calmly.")
    ]


class GatedBackend:
    """Real Kokoro, except that once ``armed``, every request after the first waits for
    ``gate`` (so a test can see what the client holds before the rest is synthesized).
    Closing it leaves the shared Kokoro open."""

    def __init__(self, inner: KokoroOnnxBackend) -> None:
        self.inner = inner
        self.name = "kokoro"
        self.sample_rate = inner.sample_rate
        self.languages = inner.languages
        self.default_voice = inner.default_voice
        self.default_lang = inner.default_lang
        self.streams_within_segment = inner.streams_within_segment
        self.native_word_timing = inner.native_word_timing
        self.kind = inner.kind
        self.model = inner.model
        self.max_input_chars = inner.max_input_chars
        self.counters = inner.counters
        self.lanes = inner.lanes
        self.gate = asyncio.Event()
        self.armed = False  # requests before (a gateway's warm-up) pass through
        self.started = 0
        self.finished = 0

    @property
    def ready(self) -> bool:
        return self.inner.ready

    async def load(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def voices(self) -> list[Voice]:
        return self.inner.voices()

    def resolve_voice(self, name: str) -> str:
        return self.inner.resolve_voice(name)

    async def synthesize(self, request: SynthesisRequest) -> AsyncIterator[AudioChunk]:
        if not self.armed:
            async for chunk in self.inner.synthesize(request):
                yield chunk
            return
        self.started += 1
        if self.started > 1:
            await self.gate.wait()
        async for chunk in self.inner.synthesize(request):
            yield chunk
        self.finished += 1


@pytest.mark.model
@pytest.mark.parametrize("fmt", ["mp3", "opus"])
async def test_first_bytes_arrive_before_the_rest_is_synthesized(
    kokoro: KokoroOnnxBackend, fmt: Format
) -> None:
    gated = GatedBackend(kokoro)
    gateway = await serve(repo_config(), {"kokoro": gated})
    gated.armed = True
    try:
        received = bytearray()
        async with (
            client(gateway) as api,
            api.audio.speech.with_streaming_response.create(
                model="kokoro", voice="jf_alpha", input=TEXT, response_format=fmt
            ) as response,
        ):
            chunks = response.iter_bytes()
            async with asyncio.timeout(timeout(60)):  # a buffering server would hang here
                received += await anext(chunks)
            assert not gated.gate.is_set()
            # The next call (the rest of the first segment, or the second) waits at the gate.
            await eventually(lambda: gated.started == 2, deadline_s=timeout(30))
            assert gated.finished <= 1, "the client holds audio of the first call only"
            gated.gate.set()
            async for chunk in chunks:
                received += chunk
        assert gated.finished == gated.started >= 2
    finally:
        await gateway.stop()
    pcm, rate = decode(bytes(received), fmt)
    heard = transcribe(pcm, rate)
    assert word_error_rate(TEXT, heard) <= 0.1, heard


async def test_a_client_that_goes_away_cancels_the_synthesis() -> None:
    tone = ToneBackend("fake", chunk_delay_s=0.02)
    gateway = await serve(repo_config(), {"kokoro": tone})
    sentences = [f"Sentence number {n} has a few more words in it." for n in range(30)]
    try:
        async with httpx.AsyncClient(timeout=timeout(30)) as http:
            request = {"input": " ".join(sentences), "voice": "tone", "response_format": "pcm"}
            async with http.stream(
                "POST", f"{gateway.http_url}/v1/audio/speech", json=request
            ) as response:
                assert response.status_code == 200
                first = await anext(response.aiter_raw())
                assert first
                assert tone.active == 1
                assert len(gateway.gateway.sessions) == 1
            # Leaving the block closes the connection mid-body.
        await eventually(lambda: tone.active == 0, deadline_s=timeout(10))
        await eventually(lambda: not gateway.gateway.sessions, deadline_s=timeout(10))
        assert len(tone.requests) < len(sentences), "synthesis stopped early"
    finally:
        await gateway.stop()


# -- errors ----------------------------------------------------------------------------------


async def post(server: RunningServer, body: object, path: str = "/v1/audio/speech",
               **headers: str) -> httpx.Response:  # fmt: skip
    async with httpx.AsyncClient(timeout=timeout(30)) as http:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **headers}
        return await http.post(f"{server.http_url}{path}", content=content, headers=headers)


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, object] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        (b"{not json", None, "not valid JSON"),
        ([1, 2], None, "must be a JSON object"),
        ({"voice": "tone"}, "input", "'input' is required"),
        ({"input": "  "}, "input", "'input' is empty"),
        ({"input": "Hi.", "speed": 3}, "speed", "from 0.5 to 2"),
        ({"input": "Hi.", "speed": True}, "speed", "'speed' must be a number"),
        ({"input": "Hi.", "response_format": "ogg"}, "response_format", "mp3, opus, aac"),
        ({"input": "Hi.", "stream_format": "sse"}, "stream_format", "not supported"),
        ({"input": "Hi.", "colour": "red"}, "colour", "unknown parameter 'colour'"),
        ({"input": "Hi.", "model": "fake", "backend": "kokoro"}, "backend", "disagree"),
        ({"input": "Hi.", "model": "fake", "lang": "de"}, "lang", "'de' is not supported"),
    ],
)
async def test_bad_requests_get_400_naming_the_parameter(
    server: RunningServer, body: object, param: str | None, says: str
) -> None:
    response = await post(server, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert says in str(error["message"])


async def test_unknown_model_is_404_and_unknown_voice_400_as_openai_answers_them(
    server: RunningServer,
) -> None:
    with pytest.raises(openai.NotFoundError) as model:
        await speech(server, model="tts-2", voice="jf_alpha", input="Hi.")
    assert model.value.code == "unknown_model"
    assert "unknown model 'tts-2'; models: kokoro, fake, tts-1" in model.value.message
    with pytest.raises(openai.BadRequestError) as voice:
        await speech(server, model="kokoro", voice="nobody", input="Hi.")
    assert voice.value.status_code == 400
    assert voice.value.code == "unknown_voice"
    assert voice.value.param == "voice"
    assert voice.value.type == "invalid_request_error"
    assert "jm_kumo" in voice.value.message


async def test_input_over_the_limit_is_413(server: RunningServer) -> None:
    limit = server.gateway.config.rest.max_input_chars
    response = await post(server, {"input": "a" * (limit + 1)})
    assert response.status_code == 413
    assert error_of(response)["code"] == "input_too_long"
    response = await post(server, b'{"input": "' + b"a" * (10 * limit) + b'"}')
    assert response.status_code == 413


async def test_voice_aliases_let_openai_voice_names_through() -> None:
    rest = RestSettings(voice_aliases={"alloy": "tone2", "echo": "missing"})
    tone = ToneBackend("fake")
    gateway = await serve(repo_config(rest=rest), {"kokoro": tone})
    try:
        _, headers = await speech(gateway, model="tts-1", voice="alloy", input="Hi.")
        assert headers["x-tts-voice"] == "tone2"
        with pytest.raises(
            openai.BadRequestError, match=r"'echo' maps to 'missing' \(rest.voice_aliases\)"
        ):
            await speech(gateway, model="tts-1", voice="echo", input="Hi.")
    finally:
        await gateway.stop()


async def test_authentication_as_for_the_other_routes() -> None:
    auth = AuthSettings(required=AuthRequired.YES, api_keys=(KEY,))
    gateway = await serve(repo_config(auth=auth), {"kokoro": ToneBackend("fake")})
    try:
        with pytest.raises(openai.AuthenticationError) as refused:
            await speech(gateway, api_key="wrong-key-0123456789", model="tts-1", voice="tone",
                         input="Hi.")  # fmt: skip
        assert refused.value.status_code == 401
        assert refused.value.code == "unauthorized"
        missing = await post(gateway, {"input": "Hi.", "voice": "tone"})  # no Authorization
        assert missing.status_code == 401
        assert error_of(missing)["type"] == "authentication_error"
        data, _ = await speech(gateway, api_key=KEY, model="tts-1", voice="tone", input="Hi.")
        assert data
        async with httpx.AsyncClient() as http:
            for method, path in (("GET", "/v1/audio/voices"), ("POST", "/v1/estimate")):
                refused_http = await http.request(method, gateway.http_url + path, json={})
                assert refused_http.status_code == 401, path
                assert error_of(refused_http)["type"] == "authentication_error"
    finally:
        await gateway.stop()


async def test_a_backend_that_failed_to_load_is_503() -> None:
    broken = ToneBackend("fake", load_error=BackendError("no weights"))
    gateway = await serve(repo_config(), {"kokoro": ToneBackend("kokoro"), "broken": broken})
    try:
        response = await post(gateway, {"input": "Hi.", "model": "broken", "voice": "tone"})
        assert response.status_code == 503
        error = error_of(response)
        assert error["code"] == "backend_unavailable"
        assert "failed to load: no weights" in str(error["message"])
    finally:
        await gateway.stop()


async def test_a_backend_error_before_any_audio_is_503_and_after_it_cuts_the_stream(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    response = await post(server, {"input": "FAILNOW please.", "model": "fake", "voice": "tone"})
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "backend_error"
    assert error["type"] == "server_error"
    assert "fake: injected failure" in str(error["message"])
    # The first segment is spoken, the second fails: the status is already 200, so the body
    # ends without its last chunk and the client library reports the incomplete stream.
    # The package's HTTP library (httpx or its fork httpx2) raises its RemoteProtocolError.
    with pytest.raises(Exception, match="incomplete chunked read") as cut:
        await speech(server, model="fake", voice="tone", input="Hello there. Then FAILNOW again.")
    assert type(cut.value).__name__ == "RemoteProtocolError"
    assert any("ended early" in r.getMessage() and "injected failure" in r.getMessage()
               for r in caplog.records)  # fmt: skip


class ExplodingBackend(ToneBackend):
    """Raises something that is not a BackendError: a bug, not a backend failure."""

    async def synthesize(self, request: SynthesisRequest) -> AsyncIterator[AudioChunk]:
        if request.text:
            raise ZeroDivisionError("a bug")
        yield AudioChunk(np.zeros(1, np.float32))


async def test_an_internal_error_is_500_without_details() -> None:
    gateway = await serve(repo_config(), {"kokoro": ExplodingBackend("kokoro")})
    try:
        response = await post(gateway, {"input": "Hi.", "voice": "tone"})
        assert response.status_code == 500
        error = error_of(response)
        assert (error["code"], error["message"]) == ("internal_error", "internal error")
    finally:
        await gateway.stop()


async def test_speech_requests_count_against_the_session_limit() -> None:
    limits = dataclasses.replace(repo_config().limits, max_sessions=1)
    tone = ToneBackend("fake")
    gateway = await serve(repo_config(limits=limits), {"kokoro": tone})
    try:
        async with httpx.AsyncClient(timeout=timeout(30)) as http:
            hanging = {"input": "Hello there. HANGNOW forever.", "voice": "tone"}
            async with http.stream(
                "POST", f"{gateway.http_url}/v1/audio/speech", json=hanging
            ) as response:
                assert response.status_code == 200
                await anext(response.aiter_raw())
                refused = await post(gateway, {"input": "Hi.", "voice": "tone"})
                assert refused.status_code == 503
                assert error_of(refused)["code"] == "too_many_sessions"
        await eventually(lambda: tone.active == 0, deadline_s=timeout(10))
        assert (await post(gateway, {"input": "Hi.", "voice": "tone"})).status_code == 200
    finally:
        await gateway.stop()


# -- voices and estimates --------------------------------------------------------------------


async def test_voices_in_an_openai_style_list(server: RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        listed = (await http.get(f"{server.http_url}/v1/audio/voices")).json()
        only = (await http.get(f"{server.http_url}/v1/audio/voices?model=tts-1")).json()
        unknown = await http.get(f"{server.http_url}/v1/audio/voices?model=nope")
    assert listed["object"] == "list"
    ids = {(v["model"], v["id"]) for v in listed["data"]}
    assert {("kokoro", "jm_kumo"), ("fake", "tone")} <= ids
    kumo = next(v for v in listed["data"] if v["id"] == "jm_kumo")
    assert kumo == {"object": "voice", "id": "jm_kumo", "name": "jm_kumo", "model": "kokoro",
                    "language": "ja", "gender": "male",
                    "languages": list(server.gateway.backends["kokoro"].languages)}  # fmt: skip
    assert {v["model"] for v in only["data"]} == {"kokoro"}
    assert unknown.status_code == 404


async def test_estimate_route(server: RunningServer) -> None:
    response = await post(server, {"input": "  Hello there.  ", "model": "tts-1", "voice": "x",
                                   "speed": 2.0}, "/v1/estimate")  # fmt: skip
    assert response.status_code == 200
    assert response.json() == {
        "object": "estimate",
        "chars": 12,
        "audio_s": round(12 / 900 * 60 / 2.0, 2),
        "cost_usd": 0.0,
        "currency": "USD",
        "backend": "kokoro",
        "model": None,
    }
    missing = await post(server, {"input": "Hi.", "backend": "nope"}, "/v1/estimate")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "unknown_model"


async def test_shutdown_ends_a_speech_under_way(caplog: pytest.LogCaptureFixture) -> None:
    """The segment being spoken hangs, so the request cannot finish: at shutdown the stream is
    cut (the client sees an incomplete body) and the synthesis is cancelled."""
    tone = ToneBackend("fake")
    config = repo_config()
    config = dataclasses.replace(
        config, server=dataclasses.replace(config.server, shutdown_timeout_s=1.0)
    )
    gateway = await serve(config, {"kokoro": tone})
    stopped = False
    try:
        async with httpx.AsyncClient(timeout=timeout(30)) as http:
            body = {
                "input": "Hello there. HANGNOW forever.",
                "voice": "tone",
                "response_format": "pcm",
            }
            async with http.stream(
                "POST", f"{gateway.http_url}/v1/audio/speech", json=body
            ) as response:
                chunks = response.aiter_raw()
                assert await anext(chunks)
                stopping = asyncio.create_task(gateway.stop())
                with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                    async for _ in chunks:
                        pass
                await stopping
                stopped = True
        assert tone.active == 0
        assert not gateway.gateway.sessions
        assert any("ended early" in r.getMessage() and "shutting down" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
    finally:
        if not stopped:
            await gateway.stop()
