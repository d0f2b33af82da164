"""The ElevenLabs-compatible WebSockets: their routes and handshake.

``/v1/text-to-speech/{voice_id}/stream-input`` and ``.../multi-stream-input`` (docs/elevenlabs.md).
Before the upgrade the handshake checks, in order: the ``Origin`` (403), the query parameters
(422), the key (401), the session limits (503, 429), the ``output_format`` (422), the backend
(``model_id`` when it names one, else ``elevenlabs_api.backend``; 503 while it cannot serve), the
voice (404, ElevenLabs' ``voice_not_found``) and ``language_code`` (422). Refusals have
ElevenLabs' error body, ``{"detail": {"status": <code>, "message": <text>}}``.

The voice and backend are resolved like every edge's (:func:`~gateway.server.opening.
resolve_stream`), with ``elevenlabs_api.voice_ids`` as the aliases: a backend's own voice names
work as ids, and ElevenLabs' premade voice ids map to voices of the default backend.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from gateway.audio.formats import parse_output_format
from gateway.backends.base import Backend
from gateway.core.elevenlabs_wire import WireError, parse_query
from gateway.core.errors import ErrorCode, ProtocolError
from gateway.core.protocol import AudioFormat
from gateway.server.auth import credentials
from gateway.server.elevenlabs_context import ContextOptions
from gateway.server.elevenlabs_socket import ElevenLabsSocket, Opened
from gateway.server.gateway import Gateway
from gateway.server.opening import resolve_stream
from gateway.speech.synthesis import StreamSettings

__all__ = ["elevenlabs_routes"]

log = logging.getLogger(__name__)

_PATH = "/v1/text-to-speech/{voice_id}"
_STATUS_OF: dict[ErrorCode, int] = {
    ErrorCode.UNKNOWN_VOICE: 404,
    ErrorCode.UNSUPPORTED_LANGUAGE: 422,
    ErrorCode.UNKNOWN_BACKEND: 422,
    ErrorCode.BACKEND_UNAVAILABLE: 503,
}


@dataclass(frozen=True, slots=True)
class _Refused(Exception):
    """A handshake refused before the upgrade: HTTP status, ElevenLabs-style code, reason."""

    status: int
    code: str
    message: str


def elevenlabs_routes(gateway: Gateway) -> list[BaseRoute]:
    """The two WebSocket routes, bound to ``gateway`` (none when the setting is off)."""
    if not gateway.config.elevenlabs_api.enabled:
        return []

    async def stream_input(websocket: WebSocket) -> None:
        await _serve(gateway, websocket, single=True)

    async def multi_stream_input(websocket: WebSocket) -> None:
        await _serve(gateway, websocket, single=False)

    return [
        WebSocketRoute(f"{_PATH}/stream-input", stream_input),
        WebSocketRoute(f"{_PATH}/multi-stream-input", multi_stream_input),
    ]


async def _serve(gateway: Gateway, websocket: WebSocket, *, single: bool) -> None:
    try:
        opened = await _handshake(gateway, websocket)
    except _Refused as refused:
        log.info("refused an elevenlabs socket: %s %s", refused.status, refused.message)
        body = {"detail": {"status": refused.code, "message": refused.message}}
        await websocket.send_denial_response(JSONResponse(body, status_code=refused.status))
        return
    socket = ElevenLabsSocket(websocket, gateway, opened, single=single)
    waiting = opened.needs_key  # for the key in the first message: counted apart till then
    if not waiting and (refusal := await gateway.admit(socket, opened.key_id)) is not None:
        log.info("refused an elevenlabs socket: %s %s", refusal.status, refusal.reason)
        body = {"detail": {"status": refusal.code.value, "message": refusal.reason}}
        await websocket.send_denial_response(JSONResponse(body, status_code=refusal.status))
        return
    with gateway.serving(socket, waiting=waiting):
        await socket.run()


async def _handshake(gateway: Gateway, websocket: WebSocket) -> Opened:
    auth = gateway.auth  # Host and Origin were checked by the Guard
    try:
        query = parse_query(websocket.query_params)
    except WireError as error:
        raise _Refused(422, error.code, error.message) from None
    secret = (websocket.headers.get("xi-api-key") or credentials(websocket.headers, ()).secret
              or query.api_key)  # fmt: skip
    key_id = auth.identify(secret, origin=websocket.headers.get("origin"), scope="stream")
    if secret is not None and key_id is None and auth.required:
        raise _Refused(401, "invalid_api_key", "Invalid API key")
    needs_key = auth.required and key_id is None
    # The key's limits are counted on admission; a socket waiting for its key has its own cap.
    if (refusal := gateway.admission_error(waiting=needs_key)) is not None:
        raise _Refused(refusal.status, refusal.code.value, refusal.reason)
    try:
        output = parse_output_format(query.output_format)
    except ValueError as error:
        raise _Refused(422, "invalid_output_format", str(error)) from None
    settings = gateway.config.elevenlabs_api
    default = settings.backend or gateway.config.session.default_backend
    backend = query.model_id if query.model_id in gateway.backends else default
    voice_id = websocket.path_params["voice_id"]
    try:
        stream = await resolve_stream(
            gateway,
            backend=backend,
            voice=voice_id,
            lang=None,
            speed=None,
            format=AudioFormat.PCM16,
            sample_rate=output.sample_rate,
            aliases=settings.voice_ids,
            aliases_setting="elevenlabs_api.voice_ids",
        )
        if query.language_code is not None:
            stream = _with_language(stream, query.language_code)
    except ProtocolError as error:
        status = _STATUS_OF.get(error.code, 422)
        if error.code is ErrorCode.UNKNOWN_VOICE:
            message = f"A voice with the voice_id {voice_id} was not found. ({error.message})"
            raise _Refused(status, "voice_not_found", message) from None
        raise _Refused(status, error.code.value, error.message) from None
    options = ContextOptions(stream=stream, output=output, auto_mode=query.auto_mode,
                             times=settings.alignment_times,
                             max_message_ms=settings.max_message_ms,
                             ssml=query.ssml)  # fmt: skip
    return Opened(options, query, key_id, needs_key)


def _with_language(stream: StreamSettings, code: str) -> StreamSettings:
    """The stream reading ``language_code`` (ISO 639-1, e.g. ``en``): the backend's language
    of that code (its default language if that one matches)."""
    lang = _language(stream.backend, code.lower())
    if lang is None:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_LANGUAGE,
            f"language_code {code!r} is not a language of backend {stream.backend.name!r}; "
            f"languages: {', '.join(stream.backend.languages)}",
        )
    return dataclasses.replace(stream, lang=lang)


def _language(backend: Backend, code: str) -> str | None:
    if code in backend.languages:
        return code
    matching = [lang for lang in backend.languages if lang.split("-")[0] == code]
    if backend.default_lang in matching:
        return backend.default_lang
    return matching[0] if matching else None
