"""The process's logs, without secrets.

Every log record made in the process passes through one place: the log record factory installed
by :func:`install_redaction`, before any handler, filter or formatter sees it. There a record's
message (and its exception text) loses what can carry a credential, at every level:

- the value of an ``Authorization`` header, and ``Bearer <secret>``;
- the ``bearer.<secret>`` WebSocket subprotocol;
- the gateway's tokens (``tgw2.…``) and the configured API keys, wherever they appear;
- the values of query strings (``/v1/stream?key=…``: the access log at INFO);
- the payload of WebSocket data frames in the debug log (an ``auth`` frame holds a key).

:func:`configure_logging` sets up the ``serve`` command's output; uvicorn's own loggers (access
log included) go through it too.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, Final, TextIO

__all__ = ["REDACTED", "add_secret", "configure_logging", "install_redaction", "redact"]

REDACTED: Final = "[redacted]"

# A WebSocket frame as websockets logs it at DEBUG: "BINARY 82 a4 ... [33 bytes]".
_FRAME: Final = re.compile(
    r"\b(TEXT|BINARY|CONT) .*( \[(?:text, |binary, )?\d+ bytes?(?:, continued)?\])", re.S
)
_PATTERNS: Final = (
    # An Authorization header as logged: "Authorization: Bearer x", "authorization=x"...
    (re.compile(r"(?i)(\bauthorization['\"]?\s*[:=]\s*)[^\r\n,;]+"), rf"\g<1>{REDACTED}"),
    (re.compile(r"(?i)\b(bearer)\s+[^\s,;'\"]+"), rf"\g<1> {REDACTED}"),
    (re.compile(r"(?i)\b(bearer\.)[^\s,;'\"]+"), rf"\g<1>{REDACTED}"),
    (re.compile(r"\btgw\d\.[A-Za-z0-9_.=-]+"), REDACTED),
    # Query string values, in a path: "/v1/stream?key=x&y=z" keeps the names only.
    (re.compile(r"(?<=[?&])([^=&\s\"'#]+)=[^&\s\"'#]*"), rf"\g<1>={REDACTED}"),
    (_FRAME, r"\g<1> (payload not logged)\g<2>"),
)

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def add_secret(secret: str) -> None:
    """Never log ``secret`` (an API key), wherever it appears."""
    with _lock:
        _secrets.add(secret)


def redact(text: str) -> str:
    """``text`` without anything that can be a credential (idempotent)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def install_redaction() -> None:
    """Redact every log record of the process when it is made (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))


def _redacting(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        _redact_record(record)
        return record

    return factory


def _redact_record(record: logging.LogRecord) -> None:
    # Arguments one by one first, so that formatters that read them (uvicorn's access log)
    # still find them; what only the whole message shows (a header logged as two arguments, a
    # frame object) makes the message final text.
    if isinstance(record.args, tuple):
        record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: left for the handler to report
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def configure_logging(level: str, *, stream: TextIO | None = None) -> None:
    """The ``serve`` command's logs: one handler on the root logger, for the gateway's and
    uvicorn's loggers alike, at ``level`` (``debug`` ... ``critical``)."""
    install_redaction()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
