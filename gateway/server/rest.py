"""The OpenAI-compatible REST edge: ``POST /v1/audio/speech``, ``GET /v1/audio/voices`` and
``POST /v1/estimate`` (docs/rest.md describes them).

The request body is validated by :mod:`gateway.server.rest_params`; the backend, voice and
language are resolved like every edge's (:mod:`gateway.server.opening`); a speech request is
then answered by a :class:`~gateway.server.rest_speech.SpeechStream`, a session without a socket.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.config import RestSettings
from gateway.core.errors import ErrorCode, ProtocolError
from gateway.core.protocol import AudioFormat
from gateway.server.auth import credentials
from gateway.server.gateway import Gateway
from gateway.server.opening import resolve_stream
from gateway.server.rest_params import RestError, SpeechParams, decode_json, parse_speech
from gateway.server.rest_speech import SpeechStream
from gateway.speech.synthesis import StreamSettings

__all__ = ["rest_routes"]

# How a refusal to open a session is answered here: status and the field at fault.
_REFUSALS: Final = {
    ErrorCode.UNKNOWN_VOICE: (400, "voice"),  # OpenAI answers an invalid voice with 400
    ErrorCode.UNSUPPORTED_LANGUAGE: (400, "lang"),
    ErrorCode.UNKNOWN_BACKEND: (404, "model"),
    ErrorCode.BACKEND_UNAVAILABLE: (503, "model"),
}


def rest_routes(gateway: Gateway) -> list[BaseRoute]:
    """The REST API's routes, bound to ``gateway``."""

    async def speech(request: Request) -> Response:
        try:
            key_id = _key_id(gateway, request)
            params = await _params(gateway, request)
            _known_backend(gateway, params.backend)
            settings = await _stream_settings(gateway, params, key_id)
            stream = SpeechStream(gateway, settings, params, key_id=key_id)
            if (refusal := await gateway.admit(stream, key_id)) is not None:
                raise RestError(refusal.status, refusal.reason, code=refusal.code.value)
        except RestError as error:
            return error.response()
        return stream

    async def voices(request: Request) -> Response:
        try:
            _key_id(gateway, request)
            model = request.query_params.get("model")
            names = list(gateway.backends) if model is None else [_known_backend(gateway, model)]
        except RestError as error:
            return error.response()
        states = gateway.status()
        data = [
            {
                "object": "voice",
                "id": voice.id,
                "name": voice.name,
                "model": name,
                "language": voice.language,
                "gender": voice.gender,
                "languages": list(gateway.backends[name].languages),
            }
            for name in names
            if states.get(name) == "ready"
            for voice in gateway.backends[name].voices()
        ]
        if not data and names:
            shown = ", ".join(f"{name}: {states.get(name, 'loading')}" for name in names)
            return RestError(
                503, f"no backend is ready yet ({shown})", code="backend_unavailable"
            ).response()
        return JSONResponse({"object": "list", "data": data})

    async def estimate(request: Request) -> Response:
        try:
            _key_id(gateway, request)
            params = await _params(gateway, request)
            name = _known_backend(gateway, params.backend)
            found, model = gateway.estimate(name, params.input, params.speed)
        except RestError as error:
            return error.response()
        return JSONResponse(
            {
                "object": "estimate",
                **found.as_dict(),
                "currency": "USD",
                "backend": name,
                "model": model,
            }
        )

    return [
        Route("/v1/audio/speech", speech, methods=["POST"]),
        Route("/v1/audio/voices", voices, methods=["GET"]),
        Route("/v1/estimate", estimate, methods=["POST"]),
    ]


async def _params(gateway: Gateway, request: Request) -> SpeechParams:
    config = gateway.config
    body = await _json_body(request, config.rest, read_timeout_s=config.server.read_timeout_s)
    return parse_speech(body, config.rest, config.session.default_backend)


def _key_id(gateway: Gateway, request: Request) -> str | None:
    """The caller's key id (None: none presented, or not valid where none is needed)."""
    presented = credentials(request.headers, ()).secret
    key_id = gateway.auth.identify(presented, origin=request.headers.get("origin"), scope="rest")
    if key_id is None and gateway.auth.required:
        raise RestError(
            401,
            "a valid API key or token is required: send 'Authorization: Bearer <key>'",
            code="unauthorized",
        )
    return key_id


async def _json_body(request: Request, rest: RestSettings, *, read_timeout_s: float) -> Any:
    """The request's JSON body, read within ``read_timeout_s`` and up to a limit that fits the
    longest allowed input. Only a JSON content type is taken: a browser page can send
    ``text/plain`` to any address without asking (no CORS preflight); JSON it cannot."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise RestError(
            415,
            f"the request body must be JSON, sent as 'Content-Type: application/json' "
            f"(got {media_type or 'no content type'!r})",
            code="unsupported_media_type",
        )
    limit = 8 * rest.max_input_chars + 65536  # \uXXXX escapes and the other fields
    body = bytearray()
    try:
        async with asyncio.timeout(read_timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise RestError(413, f"the request body is larger than {limit} bytes",
                                    code="input_too_long")  # fmt: skip
    except TimeoutError:
        raise RestError(408, f"the request body did not arrive within {read_timeout_s:g} s",
                        code="request_timeout") from None  # fmt: skip
    return decode_json(bytes(body))


def _known_backend(gateway: Gateway, name: str) -> str:
    rest = gateway.config.rest
    if name in rest.openai_models:
        name = gateway.config.session.default_backend
    if name not in gateway.backends:
        models = [*gateway.backends, *rest.openai_models]
        raise RestError(
            404,
            f"unknown model {name!r}; models: {', '.join(models)}",
            code="unknown_model",
            param="model",
        )
    return name


async def _stream_settings(
    gateway: Gateway, params: SpeechParams, key_id: str | None = None
) -> StreamSettings:
    """The request's stream (always PCM16 frames: the container encodes them)."""
    try:
        return await resolve_stream(
            gateway,
            backend=params.backend,
            voice=params.voice,
            lang=params.lang,
            speed=params.speed,
            format=AudioFormat.PCM16,
            sample_rate=params.sample_rate,
            instructions=params.instructions,
            aliases=gateway.config.rest.voice_aliases,
            aliases_setting="rest.voice_aliases",
            key_id=key_id,
            lexicon=params.lexicon,
        )
    except ProtocolError as error:
        status, param = _REFUSALS.get(error.code, (400, None))
        raise RestError(status, error.message, code=error.code.value, param=param) from None
