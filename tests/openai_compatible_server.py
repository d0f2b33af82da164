"""TEST HELPER: small fakes of the OpenAI and AllTalk speech APIs over real gateway backends.

Not part of the gateway. The gateway's own ``POST /v1/audio/speech`` (gateway/server/rest.py) is
a real OpenAI-compatible server, and the tests that need one use it (tests/test_rest.py,
tests/test_remote_speech.py, tests/test_cost_live.py). This fake stays as a stand-in for the
*provider*: the OpenAI backend's fault tests (tests/test_openai_backend.py) and
bench/remote_overhead.py need a server that behaves like OpenAI itself (a 401 that echoes the
key, as OpenAI does; the backend's raw audio, unshaped, so sample counts compare exactly; a
record of the requests and of streams aborted). It implements what the OpenAI speech API
documents and the remote backends use:

- ``POST /v1/audio/speech`` with ``model`` (a backend name), ``input`` (at most 4096
  characters), ``voice``, ``speed`` (0.25 to 4.0), ``response_format`` ``pcm`` (raw 24 kHz s16le,
  streamed as each piece is synthesized) or ``wav`` (the same with a streaming WAV header),
  and optionally ``instructions`` (recorded, not applied);
- ``GET /v1/audio/voices``: ``{"voices": [{"id", "name", ...}]}``;
- ``Authorization: Bearer <key>`` when the server is given a key, with OpenAI's error JSON
  (``{"error": {"message", "type", "code"}}``) and status codes.

:func:`alltalk_app` serves the AllTalk v2 API subset over a real backend the same way.
"""

from __future__ import annotations

import asyncio
import io
import struct
import wave
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.audio.resample import StreamResampler
from gateway.backends.base import Backend, BackendError, SynthesisRequest

MAX_INPUT = 4096
ALLTALK_VOICES = ("alloy", "echo", "fable", "nova", "onyx", "shimmer")


def pcm16(pcm: NDArray[np.float32]) -> bytes:
    return (np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def openai_error(status: int, message: str, code: str, kind: str) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


async def speech(
    backend: Backend, text: str, voice: str, speed: float, lang: str | None = None
) -> AsyncIterator[NDArray[np.float32]]:
    request = SynthesisRequest(text, voice, lang or backend.default_lang, speed)
    async for chunk in backend.synthesize(request):
        if len(chunk.pcm):
            yield chunk.pcm


def streaming_wav_header(sample_rate: int) -> bytes:
    """A WAV header with unknown sizes (0xFFFFFFFF), as streaming writers send it."""
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
        b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF)
    )


def openai_compatible_app(
    backends: Mapping[str, Backend], *, api_key: str | None = None
) -> Starlette:
    """The OpenAI speech API over ``backends`` (the request's ``model`` picks one)."""
    requests: list[dict[str, Any]] = []
    streams: list[str] = []  # per streamed response: "complete" or "aborted"

    def refused(request: Request) -> JSONResponse | None:
        if api_key is None:
            return None
        given = request.headers.get("authorization", "")
        if given != f"Bearer {api_key}":
            shown = given.removeprefix("Bearer ") or "none"
            return openai_error(
                401,
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_api_key",
                "invalid_request_error",
            )
        return None

    async def create_speech(request: Request) -> Response:
        if (denied := refused(request)) is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return openai_error(400, "We could not parse the JSON body.", "", "invalid_request")
        if not isinstance(body, dict):
            return openai_error(400, "The body must be an object.", "", "invalid_request_error")
        requests.append(body)
        for name in ("model", "input", "voice"):
            if not isinstance(body.get(name), str):
                return openai_error(
                    400, f"Missing required parameter: '{name}'.", "missing_required_parameter",
                    "invalid_request_error",
                )  # fmt: skip
        backend = backends.get(body["model"])
        if backend is None:
            return openai_error(
                404, f"The model '{body['model']}' does not exist.", "model_not_found",
                "invalid_request_error",
            )  # fmt: skip
        text: str = body["input"]
        if len(text) > MAX_INPUT:
            return openai_error(
                400, f"'input' is too long: {len(text)} > {MAX_INPUT}.",
                "string_above_max_length", "invalid_request_error",
            )  # fmt: skip
        if body["voice"] not in {v.id for v in backend.voices()}:
            return openai_error(
                400, f"Unknown voice '{body['voice']}'.", "invalid_value", "invalid_request_error"
            )
        speed = float(body.get("speed", 1.0))
        if not 0.25 <= speed <= 4.0:
            return openai_error(
                400, "'speed' must be between 0.25 and 4.0.", "invalid_value",
                "invalid_request_error",
            )  # fmt: skip
        fmt = body.get("response_format", "mp3")
        if fmt not in ("pcm", "wav"):
            return openai_error(
                400, f"response_format '{fmt}' is not supported by this test server.",
                "invalid_value", "invalid_request_error",
            )  # fmt: skip

        async def audio() -> AsyncIterator[bytes]:
            outcome = "aborted"
            try:
                if fmt == "wav":
                    yield streaming_wav_header(backend.sample_rate)
                async for pcm in speech(backend, text, body["voice"], speed):
                    yield pcm16(pcm)
                outcome = "complete"
            except BackendError:
                outcome = "failed"
            finally:
                streams.append(outcome)

        media = "audio/wav" if fmt == "wav" else "audio/pcm"
        return StreamingResponse(audio(), media_type=media)

    async def list_voices(request: Request) -> Response:
        if (denied := refused(request)) is not None:
            return denied
        voices = [
            {"id": v.id, "name": v.name, "language": v.language, "gender": v.gender, "model": name}
            for name, backend in backends.items()
            for v in backend.voices()
        ]
        return JSONResponse({"voices": voices})

    app = Starlette(
        routes=[
            Route("/v1/audio/speech", create_speech, methods=["POST"]),
            Route("/v1/audio/voices", list_voices),
        ]
    )
    app.state.requests = requests
    app.state.streams = streams
    return app


def wav_bytes(pcm: NDArray[np.float32], sample_rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm16(pcm))
    return out.getvalue()


def alltalk_app(
    backend: Backend,
    *,
    voice_map: Mapping[str, str],
    output_rate: int | None = None,
    unready_polls: int = 0,
) -> Starlette:
    """AllTalk v2's documented API over a real backend (its voices are the engine voices).

    ``/api/ready`` answers ``Unloaded`` to the first ``unready_polls`` requests. Speech comes
    back as one WAV (with a Content-Length, like AllTalk's FileResponse) at ``output_rate``
    (default: the backend's rate), after the whole text is synthesized, as AllTalk does.
    """
    state: dict[str, Any] = {"polls": 0, "voice_map": dict(voice_map), "requests": []}

    async def ready(request: Request) -> Response:
        state["polls"] += 1
        return PlainTextResponse("Ready" if state["polls"] > unready_polls else "Unloaded")

    async def voices(request: Request) -> Response:
        return JSONResponse({"status": "success", "voices": [v.id for v in backend.voices()]})

    async def voicemap(request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict) or set(body) != set(ALLTALK_VOICES):
            return JSONResponse({"detail": "all six voices are required"}, status_code=422)
        state["voice_map"] = dict(body)
        return JSONResponse({"message": "OpenAI voice mappings updated successfully"})

    async def create_speech(request: Request) -> Response:
        body = await request.json()
        state["requests"].append(body)
        problems = []
        if not isinstance(body.get("model"), str):
            problems.append("Error in field 'model': Field required")
        if not isinstance(body.get("input"), str) or len(body["input"]) > MAX_INPUT:
            problems.append("Error in field 'input': at most 4096 characters")
        if body.get("voice") not in ALLTALK_VOICES:
            problems.append(f"Error in field 'voice': Voice must be one of {list(ALLTALK_VOICES)}")
        if problems:
            return JSONResponse({"error": f"Invalid value: {', '.join(problems)}"}, 400)
        engine_voice = state["voice_map"].get(body["voice"], backend.default_voice)
        speed = float(body.get("speed", 1.0))
        parts = [pcm async for pcm in speech(backend, body["input"], engine_voice, speed)]
        pcm = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        rate = output_rate or backend.sample_rate
        if rate != backend.sample_rate:
            resampler = StreamResampler(backend.sample_rate, rate)
            pcm = np.concatenate([resampler.push(pcm), resampler.flush()])
        await asyncio.sleep(0)
        return Response(wav_bytes(pcm, rate), media_type="audio/wav")

    app = Starlette(
        routes=[
            Route("/api/ready", ready),
            Route("/api/voices", voices),
            Route("/api/openai-voicemap", voicemap, methods=["PUT"]),
            Route("/v1/audio/speech", create_speech, methods=["POST"]),
        ]
    )
    app.state.alltalk = state
    return app
