"""The ElevenLabs text-to-speech WebSocket protocol, as the gateway serves it (no I/O).

The gateway answers ``/v1/text-to-speech/{voice_id}/stream-input`` and ``.../multi-stream-input``
the way ElevenLabs' published API reference describes them, so applications written for
ElevenLabs (Pipecat's and LiveKit Agents' ElevenLabs services among them) can use local engines
by changing their base URL. docs/elevenlabs.md is the description; this module reads the query
parameters (:func:`parse_query`) and the client's JSON messages (:func:`parse_message`), and
builds the server's messages (:func:`audio_message`, :func:`final_message`,
:func:`error_message`).

Client messages are classified by content, as the reference does it: ``close_socket``,
``close_context``, text (``""`` is a keep-alive on the multi-context endpoint and the end of
input on the single one), ``flush`` and ``try_trigger_generation`` flags, and the opening
fields of a context (``voice_settings``, ``generation_config``, a key). Server messages use
ElevenLabs' camelCase keys (``isFinal``, ``contextId``, ``normalizedAlignment``,
``charStartTimesMs``, ``charDurationsMs``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.core.protocol import SPEED_RANGE

__all__ = [
    "DEFAULT_OUTPUT_FORMAT",
    "MAX_INACTIVITY_S",
    "Alignment",
    "ClientMessage",
    "StreamQuery",
    "WireError",
    "audio_message",
    "error_message",
    "final_message",
    "parse_message",
    "parse_query",
]

DEFAULT_OUTPUT_FORMAT: Final = "mp3_44100_128"
DEFAULT_INACTIVITY_S: Final = 20
MAX_INACTIVITY_S: Final = 180
SCHEDULE_RANGE: Final = (50, 500)  # each chunk_length_schedule entry, in characters
_MAX_ID: Final = 200
_MAX_KEY: Final = 4096
_KEY_FIELDS: Final = ("xi_api_key", "xi-api-key", "authorization")

# The service's error codes (``error``) and the one message it documents for a bad message.
INVALID_INPUT: Final = "invalid_input_message"
INVALID_INPUT_TEXT: Final = (
    "Could not parse input message, make sure it is a json and follows the schema outlined in "
    "protocol."
)


class WireError(ValueError):
    """Something a client sent cannot be accepted: ``code`` is the service's error code (e.g.
    ``invalid_input_message``), the message says what and why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- query parameters ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamQuery:
    """The handshake's query parameters that change what the gateway does (others are read and
    ignored: ``enable_logging``, ``seed``, ``apply_language_text_normalization``)."""

    model_id: str | None = None
    output_format: str = DEFAULT_OUTPUT_FORMAT
    language_code: str | None = None
    inactivity_timeout_s: int = DEFAULT_INACTIVITY_S
    auto_mode: bool = False
    sync_alignment: bool = False
    ssml: bool = False  # enable_ssml_parsing: the text is read as SSML (docs/protocol.md)
    api_key: str | None = None  # ``xi_api_key`` or ``authorization`` (as a query parameter)


def parse_query(params: Mapping[str, str]) -> StreamQuery:
    """The query parameters of a handshake; WireError (code ``invalid_parameters`` or
    ``unsupported_feature``) names the one at fault."""
    normalization = params.get("apply_text_normalization", "auto")
    if normalization not in ("auto", "on"):
        raise WireError(
            "unsupported_feature" if normalization == "off" else "invalid_parameters",
            f"apply_text_normalization={normalization!r}: the gateway always reads numbers, "
            "amounts and symbols out ('auto' or 'on')",
        )
    timeout = params.get("inactivity_timeout", str(DEFAULT_INACTIVITY_S))
    if not timeout.isdigit() or not 1 <= int(timeout) <= MAX_INACTIVITY_S:
        raise WireError(
            "invalid_parameters",
            f"inactivity_timeout must be a whole number of seconds from 1 to {MAX_INACTIVITY_S}, "
            f"got {timeout!r}",
        )
    authorization = params.get("authorization", "").removeprefix("Bearer ").strip()
    return StreamQuery(
        model_id=params.get("model_id") or None,
        output_format=params.get("output_format") or DEFAULT_OUTPUT_FORMAT,
        language_code=params.get("language_code") or None,
        inactivity_timeout_s=int(timeout),
        auto_mode=_boolean(params, "auto_mode"),
        sync_alignment=_boolean(params, "sync_alignment"),
        ssml=_boolean(params, "enable_ssml_parsing"),
        api_key=params.get("xi_api_key") or authorization or None,
    )


def _boolean(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise WireError("invalid_parameters", f"{name} must be true or false, got {value!r}")
    return value == "true"


# -- client messages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """One client message. ``text`` is None when the message has none; ``speed`` and
    ``schedule`` come from a context's opening fields (``voice_settings.speed``,
    ``generation_config.chunk_length_schedule``), ``api_key`` from ``xi_api_key``,
    ``xi-api-key`` or ``authorization``."""

    context_id: str | None = None
    text: str | None = None
    flush: bool = False
    try_trigger_generation: bool = False
    close_context: bool = False
    close_socket: bool = False
    speed: float | None = None
    schedule: tuple[int, ...] | None = None
    api_key: str | None = field(default=None, repr=False)

    @property
    def has_text(self) -> bool:
        """Whether it carries text to speak (not only whitespace)."""
        return bool(self.text and self.text.strip())


def parse_message(frame: str) -> ClientMessage:
    """A client's text frame; WireError ``invalid_input_message`` says what is wrong."""
    try:
        body = json.loads(frame)
    except ValueError:
        raise WireError(INVALID_INPUT, INVALID_INPUT_TEXT + " (not JSON)") from None
    if not isinstance(body, dict):
        raise WireError(INVALID_INPUT, INVALID_INPUT_TEXT + " (not a JSON object)")
    context_id = body.get("context_id", body.get("contextId"))
    if context_id is not None and (not isinstance(context_id, str) or not context_id
                                   or len(context_id) > _MAX_ID):  # fmt: skip
        raise _bad("context_id", f"a string of 1 to {_MAX_ID} characters")
    text = body.get("text")
    if text is not None and not isinstance(text, str):
        raise _bad("text", "a string")
    settings = _object(body, "voice_settings")
    config = _object(body, "generation_config")
    return ClientMessage(
        context_id=context_id,
        text=text,
        flush=_flag(body, "flush"),
        try_trigger_generation=_flag(body, "try_trigger_generation"),
        close_context=_flag(body, "close_context"),
        close_socket=_flag(body, "close_socket"),
        speed=_speed(settings),
        schedule=_schedule(config),
        api_key=_api_key(body),
    )


def _bad(name: str, expected: str) -> WireError:
    return WireError(INVALID_INPUT, f"{INVALID_INPUT_TEXT} ({name} must be {expected})")


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(name, "true or false")
    return value


def _object(body: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(name, "an object")
    return value


def _speed(settings: Mapping[str, Any]) -> float | None:
    for name in ("stability", "similarity_boost", "style"):  # accepted, not used
        value = settings.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _bad(f"voice_settings.{name}", "a number")
    speed = settings.get("speed")
    if speed is None:
        return None
    low, high = SPEED_RANGE
    if (isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed)
            or not low <= speed <= high):  # fmt: skip
        raise _bad("voice_settings.speed", f"a number from {low:g} to {high:g}")
    return float(speed)


def _schedule(config: Mapping[str, Any]) -> tuple[int, ...] | None:
    schedule = config.get("chunk_length_schedule")
    if schedule is None:
        return None
    low, high = SCHEDULE_RANGE
    if (not isinstance(schedule, list) or not schedule
            or not all(isinstance(n, int | float) and not isinstance(n, bool) and low <= n <= high
                       for n in schedule)):  # fmt: skip
        raise _bad("generation_config.chunk_length_schedule", f"a list of numbers {low}-{high}")
    return tuple(int(n) for n in schedule)


def _api_key(body: Mapping[str, Any]) -> str | None:
    for name in _KEY_FIELDS:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, str) or not 0 < len(value) <= _MAX_KEY:
                raise _bad(name, f"a string of 1 to {_MAX_KEY} characters")
            return value.removeprefix("Bearer ").strip()
    return None


# -- server messages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alignment:
    """Characters and their times in whole milliseconds (equal lengths)."""

    chars: list[str]
    start_ms: list[int]
    duration_ms: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {"chars": self.chars, "charStartTimesMs": self.start_ms,
                "charDurationsMs": self.duration_ms}  # fmt: skip


def audio_message(
    audio_b64: str,
    alignment: Alignment | None,
    normalized: Alignment | None,
    context_id: str | None,
) -> dict[str, Any]:
    """An audio chunk (base64 in ``output_format``) and the characters whose sound starts in
    it. ``audio`` may be ``""`` for the last characters of a context, after all its audio."""
    message: dict[str, Any] = {
        "audio": audio_b64,
        "isFinal": False,
        "alignment": None if alignment is None else alignment.as_dict(),
        "normalizedAlignment": None if normalized is None else normalized.as_dict(),
    }
    return _with_context(message, context_id)


def final_message(context_id: str | None) -> dict[str, Any]:
    """The last message of a context (or of the single stream)."""
    return _with_context({"isFinal": True}, context_id)


def error_message(code: str, message: str, context_id: str | None = None) -> dict[str, Any]:
    """An error in the service's shape: ``message`` (text), ``error`` (code), ``code`` 1008."""
    return _with_context({"message": message, "error": code, "code": 1008}, context_id)


def _with_context(message: dict[str, Any], context_id: str | None) -> dict[str, Any]:
    if context_id is not None:
        message["contextId"] = context_id
    return message
