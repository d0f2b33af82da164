"""The OpenAI-compatible REST edge: ``POST /v1/audio/speech``, ``GET /v1/audio/voices`` and
``POST /v1/estimate`` (docs/rest.md describes them).

A speech request is a session without a socket. Its ``input`` goes into a
:class:`~gateway.core.session.Session` at once, followed by the end, and the same
:class:`~gateway.server.speaker.Speaker` that serves ``/v1/stream`` speaks it segment by segment
(resampling, seams, fallback, timeouts) with the PCM16 frame encoder. The speaker's ``send``
receives the protocol messages: each audio frame goes through a
:class:`~gateway.audio.containers.ContainerWriter` into a bounded queue, and the response sends
what the queue holds as chunked transfer while synthesis goes on. The other messages are logged.

The status is chosen when the first audio (or a failure) comes out of the queue: a backend that
fails before any audio answers 503 with an OpenAI error body. After the first bytes the status
cannot change: a failure then closes the connection without the final chunk, so the client sees
an incomplete body instead of audio that silently stops, and the gateway logs why.

The response owns two tasks: the speaker's (the producer) and one that waits for the client to
go away. A disconnect cancels synthesis at once; both tasks are cancelled and awaited when the
response ends in any way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from gateway.audio.codecs import OpusOptions, Pcm16Encoder
from gateway.audio.containers import MEDIA_TYPES, ContainerWriter, ResponseFormat, container_writer
from gateway.audio.framing import AudioOut
from gateway.backends.base import Backend, UnknownVoiceError
from gateway.config import Config, RestSettings
from gateway.core.metrics import SessionMetrics
from gateway.core.protocol import (
    SPEED_RANGE,
    Audio,
    AudioFormat,
    BackendSwitched,
    Done,
    Error,
    Flushed,
    Progress,
    ProtocolError,
    SegmentEnd,
    ServerMessage,
)
from gateway.core.session import Session
from gateway.server.auth import credentials
from gateway.server.speaker import StreamSettings, session_segmenter, session_speaker

if TYPE_CHECKING:
    from gateway.server.app import Gateway

__all__ = ["RestError", "SpeechParams", "SpeechStream", "parse_speech", "rest_routes"]

log = logging.getLogger(__name__)

# Fields of a speech request body: OpenAI's, plus ``backend`` (a synonym of ``model``) and
# ``lang`` (the language the backend reads the text in). ``/v1/estimate`` takes the same body.
_FIELDS: Final = (
    "model",
    "backend",
    "input",
    "voice",
    "speed",
    "response_format",
    "instructions",
    "stream_format",
    "lang",
)
_MAX_INSTRUCTIONS: Final = 4096
_MAX_NAME: Final = 200
# Encoded frames waiting for the response to send them (20 ms each at the default frame):
# synthesis waits when the client reads slower than this holds.
_QUEUE_FRAMES: Final = 64
# A chunk of the response body gathers what is queued, up to this many bytes.
_MAX_CHUNK: Final = 65536
# REST responses are not paced to a listener: they go out as fast as the client reads (the
# bounded queue and TCP give the backpressure).
_UNPACED_S: Final = 365 * 24 * 3600.0

_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class RestError(Exception):
    """A request that cannot be served; answered in OpenAI's error shape."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param

    @property
    def type(self) -> str:
        return _ERROR_TYPES.get(self.status, "server_error")

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status)


# -- the request body (pure) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechParams:
    """A validated speech (or estimate) request; ``backend`` is resolved from ``model``."""

    backend: str
    input: str
    voice: str | None = None
    speed: float = 1.0
    format: ResponseFormat = ResponseFormat.MP3
    instructions: str = ""
    lang: str | None = None


def parse_speech(body: Any, rest: RestSettings, default_backend: str) -> SpeechParams:
    """Validate a request body; raises :class:`RestError` naming the field at fault.

    ``model`` (or ``backend``) is a backend name, or one of ``rest.openai_models``, which
    means ``default_backend``; missing, it is ``default_backend`` too. Whether the backend and
    the voice exist is checked later, against the running gateway.
    """
    if not isinstance(body, dict):
        raise RestError(400, "the request body must be a JSON object", code="invalid_message")
    unknown = sorted(str(k) for k in body if k not in _FIELDS)
    if unknown:
        raise RestError(
            400,
            f"unknown parameter {unknown[0]!r}; this endpoint takes {', '.join(_FIELDS)}",
            code="invalid_field",
            param=unknown[0],
        )
    text = body.get("input")
    if not isinstance(text, str):
        raise RestError(
            400,
            "'input' is required: the text to speak, a string",
            code="invalid_field",
            param="input",
        )
    if not text.strip():
        raise RestError(400, "'input' is empty", code="invalid_field", param="input")
    if len(text) > rest.max_input_chars:
        raise RestError(
            413,
            f"'input' has {len(text)} characters; the limit is {rest.max_input_chars} "
            "(rest.max_input_chars): send longer text in several requests or over /v1/stream",
            code="input_too_long",
            param="input",
        )
    model = _optional_name(body, "model")
    backend = _optional_name(body, "backend")
    if model is not None and backend is not None and model != backend:
        raise RestError(
            400,
            f"'model' ({model!r}) and 'backend' ({backend!r}) disagree; send one of them",
            code="invalid_field",
            param="backend",
        )
    name = model or backend or default_backend
    if name in rest.openai_models:
        name = default_backend
    _check_stream_format(body.get("stream_format"))
    return SpeechParams(
        backend=name,
        input=text,
        voice=_voice(body.get("voice")),
        speed=_speed(body.get("speed")),
        format=_format(body.get("response_format")),
        instructions=_instructions(body.get("instructions")),
        lang=_optional_name(body, "lang"),
    )


def _invalid(param: str, message: str) -> RestError:
    return RestError(400, message, code="invalid_field", param=param)


def _optional_name(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME:
        raise _invalid(field, f"'{field}' must be a string of 1 to {_MAX_NAME} characters")
    return value


def _voice(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"id"}:  # OpenAI's custom voice object
        value = value["id"]
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME:
        raise _invalid("voice", "'voice' must be a voice id (a string) or {\"id\": <voice id>}")
    return value


def _speed(value: Any) -> float:
    if value is None:
        return 1.0
    low, high = SPEED_RANGE
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        message = f"'speed' must be a number from {low:g} to {high:g}, got {value!r}"
        raise _invalid("speed", message)
    return float(value)


def _format(value: Any) -> ResponseFormat:
    if value is None:
        return ResponseFormat.MP3
    try:
        return ResponseFormat(value)
    except ValueError:
        choices = ", ".join(f.value for f in ResponseFormat)
        raise _invalid(
            "response_format", f"'response_format' must be one of {choices}, got {value!r}"
        ) from None


def _instructions(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > _MAX_INSTRUCTIONS:
        message = f"'instructions' must be a string of at most {_MAX_INSTRUCTIONS} characters"
        raise _invalid("instructions", message)
    return value


def _check_stream_format(value: Any) -> None:
    if value is not None and value != "audio":
        raise _invalid(
            "stream_format",
            f"'stream_format' {value!r} is not supported: this gateway "
            'streams the audio file itself ("audio")',
        )


# -- the routes --------------------------------------------------------------------------------


def rest_routes(gateway: Gateway) -> list[BaseRoute]:
    """The REST API's routes, bound to ``gateway``."""

    async def speech(request: Request) -> Response:
        try:
            key_id = _key_id(gateway, request)
            params = await _params(gateway, request)
            backend = await _ready_backend(gateway, params.backend)
            settings = _stream_settings(gateway.config, backend, params)
            if (refusal := gateway.admission_error(key_id)) is not None:
                raise RestError(refusal.status, refusal.reason, code=refusal.code.value)
        except RestError as error:
            return error.response()
        return SpeechStream(gateway, settings, params, key_id=key_id)

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
    body = await _json_body(request, config.rest)
    return parse_speech(body, config.rest, config.session.default_backend)


def _key_id(gateway: Gateway, request: Request) -> str | None:
    """The caller's key id (None: none presented, or not valid where none is needed)."""
    key_id = gateway.auth.identify(credentials(request.headers, ()).secret)
    if key_id is None and gateway.auth.required:
        raise RestError(
            401,
            "a valid API key or token is required: send 'Authorization: Bearer <key>'",
            code="unauthorized",
        )
    return key_id


async def _json_body(request: Request, rest: RestSettings) -> Any:
    """The request's JSON body, read up to a limit that fits the longest allowed input."""
    limit = 8 * rest.max_input_chars + 65536  # \uXXXX escapes and the other fields
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RestError(
                413, f"the request body is larger than {limit} bytes", code="input_too_long"
            )
    try:
        return json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise RestError(
            400, f"the request body is not valid JSON ({exc})", code="invalid_message"
        ) from None


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


async def _ready_backend(gateway: Gateway, name: str) -> Backend:
    _known_backend(gateway, name)
    try:
        return await gateway.ready_backend(name)
    except ProtocolError as error:
        raise RestError(503, error.message, code=error.code.value, param="model") from None


def _stream_settings(config: Config, backend: Backend, params: SpeechParams) -> StreamSettings:
    asked = params.voice or backend.default_voice
    alias = config.rest.voice_aliases.get(asked)
    try:
        voice = backend.resolve_voice(asked)  # listed voices, and blends where a backend mixes
    except UnknownVoiceError as error:
        if alias is None:
            raise RestError(404, str(error), code="unknown_voice", param="voice") from None
        try:
            voice = backend.resolve_voice(alias)
        except UnknownVoiceError as aliased:
            message = f"{asked!r} maps to {alias!r} (rest.voice_aliases): {aliased}"
            raise RestError(404, message, code="unknown_voice", param="voice") from None
    lang = params.lang or backend.default_lang
    if lang not in backend.languages:
        raise RestError(
            400,
            f"language {lang!r} is not supported by {backend.name!r}; languages: "
            + ", ".join(backend.languages),
            code="unsupported_language",
            param="lang",
        )
    audio = config.audio
    return StreamSettings(
        backend=backend,
        voice=voice,
        lang=lang,
        speed=params.speed,
        format=AudioFormat.PCM16,
        bitrate=audio.bitrate,
        frame_ms=audio.frame_ms,
        instructions=params.instructions,
    )


# -- one streamed response ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Failure:
    """The speech cannot go on: an error response, or the end of a stream already begun."""

    error: RestError


@dataclass(frozen=True, slots=True)
class _End:
    """All audio is in the queue."""


_Item = bytes | _Failure | _End


class _BackendFailed(Exception):
    """A segment failed (the speaker sent an ``error``); the response cannot go on."""


class SpeechStream(Response):
    """The streamed answer to one ``POST /v1/audio/speech`` (an ASGI response)."""

    def __init__(
        self,
        gateway: Gateway,
        stream: StreamSettings,
        params: SpeechParams,
        *,
        key_id: str | None,
    ) -> None:
        self._gateway = gateway
        self.key_id = key_id
        self.id = uuid.uuid4().hex[:12]
        self._log = logging.LoggerAdapter(log, {"session": self.id})
        self._format = params.format
        config = gateway.config
        rate = config.audio.sample_rate
        audio = config.audio
        self._writer: ContainerWriter = container_writer(
            params.format,
            sample_rate=rate,
            bitrate=config.rest.bitrate,
            opus=OpusOptions(
                sample_rate=rate,
                frame_ms=audio.frame_ms,
                bitrate=audio.bitrate,
                vbr=audio.vbr.value,
                application=audio.application.value,
                complexity=audio.complexity,
            ),
        )
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(_QUEUE_FRAMES)
        self._session = Session(
            config.segmenter,
            max_pending_chars=len(params.input),
            max_pending_flushes=1,
            max_heard_chars=len(params.input),
        )
        self._metrics = SessionMetrics(sample_rate=rate, started_at=time.monotonic())
        self._speaker = session_speaker(
            gateway,
            session=self._session,
            stream=stream,
            audio=AudioOut(Pcm16Encoder(sample_rate=rate, frame_ms=stream.frame_ms)),
            metrics=self._metrics,
            send=self._on_message,
            log=self._log,
            pace_ahead_s=_UNPACED_S,
        )
        self._text = params.input
        self._producer: asyncio.Task[None] | None = None
        self._sent_bytes = 0
        self._first_byte_at: float | None = None
        self.done: Done | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self._gateway
        gateway.speeches.add(self)
        if self.key_id is not None:
            gateway.sessions_per_key[self.key_id] += 1
        listener = asyncio.create_task(_disconnected(receive), name=f"speech-listener-{self.id}")
        try:
            self._session.begin(session_segmenter(self._gateway, self._speaker.stream.backend))
            self._session.accept_text(self._text)
            self._session.request_end()
            self._metrics.segment_released(time.monotonic())
            self._producer = asyncio.create_task(self._produce(), name=f"speech-{self.id}")
            self._log.info(
                "speech: %d characters, backend=%s voice=%s format=%s",
                len(self._text),
                self._speaker.stream.backend.name,
                self._speaker.stream.voice,
                self._format.value,
            )
            await self._respond(scope, receive, send, listener)
        finally:
            await _cancelled(listener)
            await _cancelled(self._producer)
            self._writer.close()
            self._session.close()
            gateway.speeches.discard(self)
            if self.key_id is not None:
                gateway.sessions_per_key[self.key_id] -= 1

    async def shut_down(self, finish_within_s: float) -> None:
        """The gateway is stopping: finish the segment being spoken (for at most
        ``finish_within_s``), then end the response early (a stream already begun is cut)."""
        task = self._producer
        if task is None or task.done():
            return
        self._speaker.draining = True
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(finish_within_s):
                await asyncio.shield(task)
        await _cancelled(task)

    # -- producer: the speaker -------------------------------------------------------------------

    async def _produce(self) -> None:
        item: _Item
        try:
            finished = await self._speaker.run(_no_more_work)
        except _BackendFailed as failed:
            item = _Failure(RestError(503, str(failed), code="backend_error"))
        except Exception:
            self._log.exception("speech failed")
            item = _Failure(RestError(500, "internal error", code="internal_error"))
        else:
            item = (
                _End()
                if finished
                else _Failure(RestError(503, "the gateway is shutting down", code="shutting_down"))
            )
        await self._queue.put(item)

    async def _on_message(self, message: ServerMessage) -> None:
        """The speaker's ``send``: audio into the file, the rest into the log."""
        match message:
            case Audio():
                await self._put(self._writer.write(message.data))
            case SegmentEnd() | Flushed():
                await self._put(self._writer.flush())
            case Progress(event="first_audio"):
                await self._put(self._writer.flush())
            case Done():
                await self._put(self._writer.finish())
                self.done = message
                first = self._first_byte_at
                self._log.info(
                    "speech done (first byte after %s ms): %s",
                    "n/a" if first is None else round((first - self._metrics.started_at) * 1000),
                    message.metrics,
                )
            case Error():
                raise _BackendFailed(message.message)
            case BackendSwitched():
                self._log.warning("switched from %s to %s", message.previous, message.backend)
            case _:
                pass

    async def _put(self, data: bytes) -> None:
        if data:
            await self._queue.put(data)

    # -- consumer: the response ------------------------------------------------------------------

    async def _respond(
        self, scope: Scope, receive: Receive, send: Send, listener: asyncio.Task[None]
    ) -> None:
        started = False
        held: _Item | None = None
        while True:
            item = held if held is not None else await self._next(listener)
            held = None
            if item is None:
                self._log.info(
                    "the client went away after %d bytes: synthesis cancelled", self._sent_bytes
                )
                return
            if isinstance(item, bytes):
                chunk = bytearray(item)
                while not self._queue.empty() and len(chunk) < _MAX_CHUNK:
                    following = self._queue.get_nowait()
                    if not isinstance(following, bytes):
                        held = following
                        break
                    chunk += following
                if not started:
                    started = True
                    await self._start(send)
                self._sent_bytes += len(chunk)
                await send({"type": "http.response.body", "body": bytes(chunk), "more_body": True})
            elif isinstance(item, _End):
                if not started:
                    await self._start(send)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            elif not started:
                self._log.warning("speech refused: %s", item.error.message)
                await item.error.response()(scope, receive, send)
                return
            else:
                # Closing without the final chunk: the client sees an incomplete body.
                self._log.error(
                    "speech stream ended early after %d bytes (status 200 already sent): %s",
                    self._sent_bytes,
                    item.error.message,
                )
                return

    async def _next(self, listener: asyncio.Task[None]) -> _Item | None:
        """The next queued item; None once the client has gone away."""
        if listener.done():
            return None
        if not self._queue.empty():
            return self._queue.get_nowait()
        producer = self._producer
        assert producer is not None
        get = asyncio.create_task(self._queue.get(), name=f"speech-get-{self.id}")
        try:
            await asyncio.wait({get, listener, producer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not get.done():
                await _cancelled(get)
        if get.done() and not get.cancelled():
            return get.result()
        if listener.done():
            return None
        # The producer ended without a last word: it was cancelled (shutdown deadline).
        return _Failure(RestError(503, "the gateway is shutting down", code="shutting_down"))

    async def _start(self, send: Send) -> None:
        self._first_byte_at = time.monotonic()
        stream = self._speaker.stream
        headers = [
            (b"content-type", MEDIA_TYPES[self._format].encode()),
            (b"cache-control", b"no-store"),
            (b"x-tts-backend", stream.backend.name.encode()),
            (b"x-tts-voice", stream.voice.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


async def _no_more_work() -> None:
    """A speech request's work is all queued before it starts; the speaker never waits."""
    raise RuntimeError("a speech request has no more work to wait for")


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone away (the request body has been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _cancelled(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task this response owns and wait until it has stopped."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
