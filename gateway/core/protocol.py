"""The wire protocol: typed messages and their msgpack codec (no I/O).

Every WebSocket frame is one binary frame holding one msgpack map with a ``type`` key.
``docs/protocol.md`` is the normative description; this module is its executable form and is
shared by the gateway and the Python client.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import msgpack

from gateway.core.errors import ErrorCode, ProtocolError
from gateway.core.lexicon import parse_entries

__all__ = [
    "PROTOCOL_VERSION",
    "Audio",
    "AudioFormat",
    "Auth",
    "BackendSwitched",
    "Cancel",
    "Cancelled",
    "ClientMessage",
    "Done",
    "End",
    "Error",
    "ErrorCode",
    "Estimate",
    "Estimated",
    "Flush",
    "Flushed",
    "Progress",
    "ProtocolError",
    "Ready",
    "SegmentEnd",
    "SegmentStart",
    "ServerMessage",
    "Start",
    "Text",
    "Words",
    "decode_client_message",
    "decode_server_message",
    "encode_client_message",
    "encode_server_message",
]

PROTOCOL_VERSION: Final = 1

OPUS_FRAME_MS: Final = (10, 20, 40, 60)
SPEED_RANGE: Final = (0.5, 2.0)
BITRATE_RANGE: Final = (6_000, 256_000)


class AudioFormat(enum.StrEnum):
    """How audio frames are carried: Opus packets, raw little-endian 16-bit PCM, or G.711
    (mu-law or A-law, one byte per sample: telephony)."""

    OPUS = "opus"
    PCM16 = "pcm16"
    ULAW = "ulaw"
    ALAW = "alaw"


# --- client -> server ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Opens the session. Every field is optional; missing ones take the gateway's defaults."""

    TYPE: ClassVar[str] = "start"
    backend: str | None = None
    voice: str | None = None
    lang: str | None = None
    speed: float | None = None
    format: AudioFormat | None = None
    bitrate: int | None = None
    frame_ms: int | None = None
    sample_rate: int | None = None
    short_first_segment: bool | None = None
    lexicon: list[dict[str, str]] | None = None
    ssml: bool | None = None


@dataclass(frozen=True, slots=True)
class Auth:
    """Credentials as the first message, for clients that cannot set headers (browsers)."""

    TYPE: ClassVar[str] = "auth"
    token: str


@dataclass(frozen=True, slots=True)
class Text:
    """More text to speak, appended to everything sent before."""

    TYPE: ClassVar[str] = "text"
    text: str


@dataclass(frozen=True, slots=True)
class Flush:
    """Speak everything buffered now; answered by ``flushed`` once its audio is sent."""

    TYPE: ClassVar[str] = "flush"
    id: int | str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """Barge-in: stop speaking, drop buffered text and audio; answered by ``cancelled``.

    ``position`` is the client's playback position on the session timeline (samples at the
    stream rate), so the answer can say exactly what was heard.
    """

    TYPE: ClassVar[str] = "cancel"
    id: int | str | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True)
class End:
    """No more text: speak what is buffered, send ``done`` and close."""

    TYPE: ClassVar[str] = "end"


@dataclass(frozen=True, slots=True)
class Estimate:
    """What speaking ``text`` would cost; answered by ``estimated``. Speaks nothing.

    After ``start`` the missing fields take the session's backend and speed; before it,
    ``backend`` is required.
    """

    TYPE: ClassVar[str] = "estimate"
    text: str
    id: int | str | None = None
    backend: str | None = None
    speed: float | None = None


ClientMessage = Auth | Start | Text | Flush | Cancel | End | Estimate

# --- server -> client ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """Sent once, in answer to ``start``: the session's stream parameters."""

    TYPE: ClassVar[str] = "ready"
    protocol: int
    session: str
    backend: str
    voice: str
    lang: str
    speed: float
    format: str
    sample_rate: int
    channels: int
    frame_samples: int
    bitrate: int | None
    preskip: int
    max_message_bytes: int
    max_pending_chars: int
    max_heard_chars: int = 100_000


@dataclass(frozen=True, slots=True)
class SegmentStart:
    """A segment of the client's text begins; its audio starts at ``sample_start``."""

    TYPE: ClassVar[str] = "segment_start"
    segment: int
    text: str
    char_start: int
    char_end: int
    sample_start: int
    boundary: str
    released_by: str
    received_chars: int


@dataclass(frozen=True, slots=True)
class Words:
    """Word timings of a segment, sent before the audio frames that hold them.

    Each word is a map: ``text`` (the client's characters ``[char_start, char_end)``),
    ``char_start``, ``char_end``, ``sample_start``, ``sample_end`` (session timeline) and, where
    the reading differs from the text, ``spoken``. ``estimated`` marks timings the backend did
    not report (spread over the audio by length).
    """

    TYPE: ClassVar[str] = "words"
    segment: int
    estimated: bool
    words: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Progress:
    """Where the session stands: sent at segment events and at most every interval."""

    TYPE: ClassVar[str] = "progress"
    event: str
    segment: int | None
    chars_received: int
    chars_spoken: int
    audio_sent_ms: float
    audio_buffered_ms: float
    underruns: int
    time_to_first_audio_ms: float | None
    real_time_factor: float | None
    cost_usd: float | None = None
    billed_chars: int = 0
    billed_audio_s: float = 0.0
    compute_s: float = 0.0
    saturated: bool = False


@dataclass(frozen=True, slots=True)
class Audio:
    """One audio frame; ``sample_start`` is its position on the session timeline."""

    TYPE: ClassVar[str] = "audio"
    seq: int
    sample_start: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SegmentEnd:
    """All audio of a segment has been produced; it ends at ``sample_end``."""

    TYPE: ClassVar[str] = "segment_end"
    segment: int
    sample_end: int
    synthesis_ms: float


@dataclass(frozen=True, slots=True)
class Flushed:
    """Answer to ``flush``: all audio for text before the flush has been sent."""

    TYPE: ClassVar[str] = "flushed"
    id: int | str | None
    sample_end: int
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class Cancelled:
    """Answer to ``cancel``: nothing of ``[unspoken_start, unspoken_end)`` will be sent."""

    TYPE: ClassVar[str] = "cancelled"
    id: int | str | None
    sample_end: int
    unspoken_start: int
    unspoken_end: int
    unspoken_text: str
    position: int = 0
    cut: int = 0
    heard_start: int = 0
    heard_text: str = ""
    unheard_text: str = ""


@dataclass(frozen=True, slots=True)
class BackendSwitched:
    """The session moved to its backend's fallback after a failure (at a segment boundary)."""

    TYPE: ClassVar[str] = "backend_switched"
    segment: int
    previous: str
    backend: str
    voice: str
    lang: str
    reason: str


@dataclass(frozen=True, slots=True)
class Error:
    """Something went wrong; ``fatal`` errors are followed by the socket closing."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    fatal: bool = False
    ref: str | None = None
    char_start: int | None = None
    char_end: int | None = None


@dataclass(frozen=True, slots=True)
class Done:
    """The last message of a session that ended with ``end``: final metrics, and what was
    heard since the last cancel (everything: ``cut`` is the end of the text)."""

    TYPE: ClassVar[str] = "done"
    metrics: dict[str, Any] = field(default_factory=dict)
    cut: int = 0
    heard_start: int = 0
    heard_text: str = ""


@dataclass(frozen=True, slots=True)
class Estimated:
    """Answer to ``estimate``: the characters billed, the audio expected and its price.

    ``cost_usd`` is None when the backend's price is unknown (a hosted model missing from the
    price table), never a silent 0; ``model`` is None for backends without models.
    """

    TYPE: ClassVar[str] = "estimated"
    id: int | str | None
    backend: str
    model: str | None
    chars: int
    audio_s: float
    cost_usd: float | None
    currency: str = "USD"


ServerMessage = (
    Ready
    | SegmentStart
    | Words
    | Progress
    | Audio
    | SegmentEnd
    | Flushed
    | Cancelled
    | BackendSwitched
    | Error
    | Done
    | Estimated
)

_SERVER_TYPES: Final[dict[str, type[ServerMessage]]] = {
    cls.TYPE: cls
    for cls in (
        Ready,
        SegmentStart,
        Words,
        Progress,
        Audio,
        SegmentEnd,
        Flushed,
        Cancelled,
        BackendSwitched,
        Error,
        Done,
        Estimated,
    )
}
_FIELD_NAMES: Final[dict[type[Any], tuple[str, ...]]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls))
    for cls in (*_SERVER_TYPES.values(), Auth, Start, Text, Flush, Cancel, End, Estimate)
}
# The fields typed ``float`` (or ``float | None``): always sent as floats (docs/protocol.md).
_FLOAT_FIELDS: Final[dict[type[Any], frozenset[str]]] = {
    cls: frozenset(f.name for f in dataclasses.fields(cls) if f.type in ("float", "float | None"))
    for cls in _FIELD_NAMES
}


def encode_server_message(message: ServerMessage) -> bytes:
    """Serialize a server message to one msgpack map (``type`` first)."""
    return _pack(message)


def encode_client_message(message: ClientMessage) -> bytes:
    """Serialize a client message; fields left at ``None`` are omitted."""
    return _pack(message, omit_none=True)


def _pack(message: Any, *, omit_none: bool = False) -> bytes:
    body: dict[str, Any] = {"type": message.TYPE}
    floats = _FLOAT_FIELDS[type(message)]
    for name in _FIELD_NAMES[type(message)]:
        value = getattr(message, name)
        if value is None and omit_none:
            continue
        if name in floats and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # a float field is a msgpack float on the wire, even when whole
        body[name] = value
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


def decode_server_message(frame: bytes) -> ServerMessage:
    """Parse a server frame; unknown fields are ignored so newer servers stay readable."""
    body = _unpack(frame)
    cls = _SERVER_TYPES.get(body.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {body.get('type')!r}")
    known = {k: v for k, v in body.items() if k in _FIELD_NAMES[cls]}
    try:
        return cls(**known)
    except TypeError as exc:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"malformed {cls.TYPE}: {exc}") from None


def _unpack(frame: bytes) -> dict[str, Any]:
    try:
        body = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except UnicodeDecodeError:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            "a msgpack string is not valid UTF-8",
            fatal=True,
        ) from None
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE, f"frame is not one valid msgpack value ({exc})"
        ) from None
    if not isinstance(body, dict):
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"a message must be a msgpack map, got {type(body).__name__}",
        )
    return body


# --- client message validation ----------------------------------------------------------------

Checker = Callable[[str, Any], Any]


def decode_client_message(frame: bytes) -> ClientMessage:
    """Parse and validate one client frame.

    Raises ProtocolError with a message that names the offending field.
    """
    body = _unpack(frame)
    kind = body.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "a message needs a string field 'type'")
    schema = _CLIENT_SCHEMAS.get(kind)
    if schema is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {kind!r}; expected one of {', '.join(_CLIENT_SCHEMAS)}",
        )
    try:
        return _validated(kind, body, *schema)
    except ProtocolError as error:
        error.ref = kind
        raise


def _validated(
    kind: str, body: dict[str, Any], cls: type[Any], checkers: dict[str, Checker]
) -> ClientMessage:
    unknown = sorted(str(k) for k in body if k != "type" and k not in checkers)
    if unknown:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"unknown field(s) {', '.join(map(repr, unknown))} in {kind!r}; "
            f"allowed: {', '.join(checkers) or 'none'}",
        )
    values = {
        name: check(f"{kind}.{name}", body[name])
        for name, check in checkers.items()
        if name in body
    }
    missing = [f.name for f in dataclasses.fields(cls) if _required(f) and f.name not in values]
    if missing:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"{kind!r} needs field {missing[0]!r}")
    message: ClientMessage = cls(**values)
    return message


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _invalid(where: str, expected: str, value: Any) -> ProtocolError:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return ProtocolError(
        ErrorCode.INVALID_FIELD, f"{where} must be {expected}, got {type(value).__name__} {shown}"
    )


def _optional(check: Checker) -> Checker:
    def checked(where: str, value: Any) -> Any:
        return None if value is None else check(where, value)

    return checked


def _string(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _invalid(where, "a string", value)
    return value


def _name(where: str, value: Any) -> str:
    text = _string(where, value)
    if not text or len(text) > 200:
        raise _invalid(where, "a non-empty string of at most 200 characters", value)
    return text


def _secret(where: str, value: Any) -> str:
    text = _string(where, value)
    if not text or len(text) > 4096:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"{where} must be 1 to 4096 characters")
    return text  # never echoed back: it may be a key


def _boolean(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid(where, "true or false", value)
    return value


def _integer(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(where, "an integer", value)
    return value


def _in_range(low: float, high: float, check: Checker) -> Checker:
    def checked(where: str, value: Any) -> Any:
        number = check(where, value)
        if not low <= number <= high:
            raise _invalid(where, f"between {low:g} and {high:g}", value)
        return number

    return checked


def _one_of(choices: tuple[int, ...]) -> Checker:
    def checked(where: str, value: Any) -> int:
        number = _integer(where, value)
        if number not in choices:
            raise _invalid(where, f"one of {', '.join(map(str, choices))}", value)
        return number

    return checked


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(where, "a finite number", value)
    return float(value)


def _audio_format(where: str, value: Any) -> AudioFormat:
    try:
        return AudioFormat(_string(where, value))
    except ValueError:
        choices = ", ".join(repr(f.value) for f in AudioFormat)
        raise _invalid(where, f"one of {choices}", value) from None


def _lexicon(where: str, value: Any) -> list[dict[str, str]]:
    """A pronunciation lexicon: a list of entry maps (gateway.core.lexicon)."""
    try:
        parse_entries(where, value)
    except ValueError as exc:
        raise ProtocolError(ErrorCode.INVALID_FIELD, str(exc)) from None
    return [dict(entry) for entry in value]


def _request_id(where: str, value: Any) -> int | str:
    if isinstance(value, str) and len(value) <= 200:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _invalid(where, "an integer or a string of at most 200 characters", value)


_CLIENT_SCHEMAS: Final[dict[str, tuple[type[Any], dict[str, Checker]]]] = {
    Auth.TYPE: (Auth, {"token": _secret}),
    Start.TYPE: (
        Start,
        {
            "backend": _optional(_name),
            "voice": _optional(_name),
            "lang": _optional(_name),
            "speed": _optional(_in_range(*SPEED_RANGE, _number)),
            "format": _optional(_audio_format),
            "bitrate": _optional(_in_range(*BITRATE_RANGE, _integer)),
            "frame_ms": _optional(_one_of(OPUS_FRAME_MS)),
            "sample_rate": _optional(_integer),
            "short_first_segment": _optional(_boolean),
            "lexicon": _optional(_lexicon),
            "ssml": _optional(_boolean),
        },
    ),
    Text.TYPE: (Text, {"text": _string}),
    Flush.TYPE: (Flush, {"id": _optional(_request_id)}),
    Cancel.TYPE: (
        Cancel,
        {"id": _optional(_request_id), "position": _optional(_in_range(0, 2**53, _integer))},
    ),
    End.TYPE: (End, {}),
    Estimate.TYPE: (
        Estimate,
        {
            "text": _string,
            "id": _optional(_request_id),
            "backend": _optional(_name),
            "speed": _optional(_in_range(*SPEED_RANGE, _number)),
        },
    ),
}
