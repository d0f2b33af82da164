"""Every error the gateway raises on purpose, in one tree, and the one map from an error code to
a WebSocket close code.

::

    GatewayError                    retryable: whether trying the same thing again may succeed
    ├── ConfigError                 a setting is wrong (names the key); also a ValueError
    ├── ProtocolError               a client message cannot be accepted -> an ``error`` message
    ├── VoiceBlendError             a voice name that is not a valid blend; also a ValueError
    ├── AudioFormatError            bytes that are not audio of the expected format; a ValueError
    ├── SpeechError                 the speaking pipeline could not go on (REST stops on it)
    └── BackendError                a backend could not synthesize (message safe to show)
        ├── UnknownVoiceError       a voice the backend cannot speak with
        └── RemoteError             a provider's refusal or failure (retryable by status)

``retryable`` matters where something retries: the remote backends retry a
:class:`RemoteError` whose ``retryable`` is set (timeouts, 408, 429, 5xx), never one that
delivered audio. Every other error is final for the request that raised it.

:func:`close_code` is the only place that picks a WebSocket close code for an error code
(docs/protocol.md, section 10).
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "OVER_CAPACITY_CLOSE",
    "AudioFormatError",
    "BackendError",
    "ConfigError",
    "ErrorCode",
    "GatewayError",
    "ProtocolError",
    "RemoteError",
    "SpeechError",
    "UnknownVoiceError",
    "VoiceBlendError",
    "close_code",
]


class ErrorCode(enum.StrEnum):
    """Machine-readable error codes sent in ``error`` messages (see docs/protocol.md)."""

    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    NOT_STARTED = "not_started"
    ALREADY_STARTED = "already_started"
    ENDED = "ended"
    UNKNOWN_BACKEND = "unknown_backend"
    UNKNOWN_VOICE = "unknown_voice"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    PENDING_TEXT_LIMIT = "pending_text_limit"
    INVALID_SSML = "invalid_ssml"
    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"
    TOO_MANY_SESSIONS = "too_many_sessions"
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    SHUTTING_DOWN = "shutting_down"
    OVER_CAPACITY = "over_capacity"
    LIMITS_UNAVAILABLE = "limits_unavailable"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    BACKEND_ERROR = "backend_error"
    INTERNAL_ERROR = "internal_error"


# "Refused: this replica is over capacity, try another one (now, through the balancer)". From
# the private-use range (RFC 6455, 4000-4999), 4000 + the HTTP status of the same refusal before
# the upgrade; unlike 1013 (try again later), a client reconnects at once.
OVER_CAPACITY_CLOSE: Final = 4503

# The close codes of fatal errors that do not close with 1008 (policy violation). Only a
# msgpack string that is not UTF-8 makes ``invalid_message`` fatal, hence 1007.
_CLOSE_CODES: Final = {
    ErrorCode.INVALID_MESSAGE: 1007,
    ErrorCode.TOO_MANY_SESSIONS: 1013,
    ErrorCode.OVER_CAPACITY: OVER_CAPACITY_CLOSE,
    ErrorCode.LIMITS_UNAVAILABLE: 1013,
    ErrorCode.SHUTTING_DOWN: 1001,
    ErrorCode.INTERNAL_ERROR: 1011,
    ErrorCode.BACKEND_ERROR: 1011,
}
POLICY_VIOLATION: Final = 1008


def close_code(code: ErrorCode) -> int:
    """The WebSocket close code that follows a fatal ``error`` with ``code``."""
    return _CLOSE_CODES.get(code, POLICY_VIOLATION)


class GatewayError(Exception):
    """The root of the gateway's own errors; ``retryable`` says whether a retry may help."""

    retryable: bool = False


class ConfigError(GatewayError, ValueError):
    """A configuration that cannot be used; the message names the key at fault."""


class ProtocolError(GatewayError):
    """A client message that cannot be accepted; becomes an ``error`` message.

    A fatal one closes the session with :func:`close_code` of its code.
    """

    def __init__(
        self, code: ErrorCode, message: str, *, fatal: bool = False, ref: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal
        self.ref = ref  # the type of the client message at fault, when it is known

    @property
    def close_code(self) -> int:
        """For a fatal error: the WebSocket close code."""
        return close_code(self.code)


class VoiceBlendError(GatewayError, ValueError):
    """A voice name that is not a valid blend; the message names the bad part."""


class AudioFormatError(GatewayError, ValueError):
    """The bytes are not audio in the expected format, or the stream ended mid-way."""


class SpeechError(GatewayError):
    """A segment could not be spoken and the caller asked the pipeline to stop on failures
    (a REST response, whose audio cannot continue past a hole)."""


class BackendError(GatewayError):
    """A backend could not synthesize; the message is safe to show to the client."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class UnknownVoiceError(BackendError):
    """A voice name the backend cannot speak with; the message names the bad part."""


class RemoteError(BackendError):
    """A provider request failed. ``retryable``: repeating it may succeed (timeouts, 408, 429,
    5xx); ``retry_after_s`` is the provider's Retry-After, if it sent one."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.retry_after_s = retry_after_s
        self.status = status
