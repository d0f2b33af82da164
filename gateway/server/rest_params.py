"""The body of an OpenAI-style speech request, validated (no I/O): :func:`decode_json` (the
bytes to a JSON value), :func:`parse_speech`, and :class:`RestError`, a request that cannot be
served, answered in OpenAI's error shape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from starlette.responses import JSONResponse

from gateway.audio.containers import ResponseFormat
from gateway.audio.formats import DEFAULT_SAMPLE_RATE, FILE_RATES, default_rate
from gateway.config import RestSettings
from gateway.core.errors import GatewayError, ProtocolError
from gateway.core.lexicon import parse_entries
from gateway.core.protocol import SPEED_RANGE
from gateway.core.ssml import MarkupScanner

__all__ = ["RestError", "SpeechParams", "decode_json", "parse_speech"]

# Fields of a speech request body: OpenAI's, plus ``backend`` (a synonym of ``model``), ``lang``
# (the language the backend reads the text in) and ``sample_rate`` (of the audio file, in Hz).
# ``/v1/estimate`` takes the same body.
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
    "sample_rate",
    "lexicon",
    "ssml",
)
_MAX_INSTRUCTIONS: Final = 4096
_MAX_NAME: Final = 200

_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


class RestError(GatewayError):
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


def decode_json(body: bytes) -> Any:
    """The JSON value of a request body; a :class:`RestError` (400 ``invalid_message``) for
    anything that is not JSON of valid Unicode: malformed, nested too deeply for the parser,
    or holding a lone surrogate (``"\\ud800"``, which JSON's escapes allow)."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise RestError(
            400, "the request body is nested too deeply", code="invalid_message"
        ) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise RestError(
            400, f"the request body is not valid JSON ({exc})", code="invalid_message"
        ) from None
    if (bad := _lone_surrogate(value)) is not None:
        raise RestError(
            400,
            f"the request body holds a lone surrogate in {bad!a}: strings must be Unicode",
            code="invalid_message",
        )
    return value


def _lone_surrogate(value: Any) -> str | None:
    """The first string (key or value) of a JSON value that is not valid Unicode, or None."""
    pending = [value]  # iterative: the parser's own depth limit has been checked already
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
    return None


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
    sample_rate: int = DEFAULT_SAMPLE_RATE
    lexicon: tuple[dict[str, str], ...] = ()
    ssml: bool = False


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
    fmt = _format(body.get("response_format"))
    ssml = _flag(body, "ssml")
    if ssml:
        _check_ssml(text)
    return SpeechParams(
        backend=name,
        input=text,
        voice=_voice(body.get("voice")),
        speed=_speed(body.get("speed")),
        format=fmt,
        sample_rate=_sample_rate(body.get("sample_rate"), fmt),
        instructions=_instructions(body.get("instructions")),
        lang=_optional_name(body, "lang"),
        lexicon=_lexicon(body.get("lexicon")),
        ssml=ssml,
    )


def _lexicon(value: Any) -> tuple[dict[str, str], ...]:
    """A pronunciation lexicon for this request (gateway.core.lexicon), validated."""
    if value is None:
        return ()
    try:
        parse_entries("lexicon", value)
    except ValueError as exc:
        raise _invalid("lexicon", str(exc)) from None
    return tuple(dict(entry) for entry in value)


def _check_ssml(text: str) -> None:
    """Malformed SSML is refused before anything is spoken, naming the character at fault."""
    scanner = MarkupScanner()
    try:
        scanner.feed(text)
        scanner.finish()
    except ProtocolError as error:
        raise RestError(400, error.message, code=error.code.value, param="input") from None


def _flag(body: Mapping[str, Any], field: str) -> bool:
    value = body.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid(field, f"{field!r} must be true or false, got {value!r}")
    return value


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


def _sample_rate(value: Any, fmt: ResponseFormat) -> int:
    rates = FILE_RATES[fmt]
    if value is None:
        return default_rate(rates)
    if isinstance(value, bool) or not isinstance(value, int) or value not in rates:
        shown = ", ".join(map(str, rates))
        message = f"'sample_rate' must be one of {shown} for {fmt.value}, got {value!r}"
        raise _invalid("sample_rate", message)
    return value


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
