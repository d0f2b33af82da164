"""What every remote backend shares on the wire: failure classification, the retry policy and
HTTP streaming.

One place decides what is retried and how long to wait:

- 401/403: never retried; the message says the API key is wrong or missing and names where it
  comes from (the environment variable or the config key). The key itself is never logged or
  shown (it is removed from provider messages too).
- 429 (except "quota exhausted"), 408 and 5xx: retried with exponential backoff and jitter,
  honouring Retry-After (up to ``max_retry_after_s``); at most ``max_attempts`` attempts.
- A connection dropped before any audio: retried like a 5xx. A connection refused: not retried
  ("AllTalk is not running at ..."). Connect and first-byte timeouts: not retried, so a
  session learns quickly that the service is unusable.
- Retries happen only before any audio of the attempt reached the caller, so audio is never
  duplicated; a stream cut after that is an error, never silently short audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import os
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

import anyio
import httpx

from gateway.backends.settings import RemoteSettings
from gateway.backends.threads import join
from gateway.core.errors import RemoteError

__all__ = [
    "RemoteError",
    "RetryPolicy",
    "Service",
    "classify_status",
    "connect_error",
    "get_json",
    "keyed_service",
    "parse_retry_after",
    "provider_message",
    "reason",
    "resolve_api_key",
    "retrying",
    "stream_http",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_ERROR_BODY: Final = 4096
_MAX_SHOWN_MESSAGE: Final = 300


@dataclass(frozen=True, slots=True)
class Service:
    """How to name a remote service in messages, and where its API key comes from."""

    backend: str  # the configured backend name
    provider: str  # "OpenAI", "AllTalk", "ElevenLabs"
    base_url: str
    api_key: str = ""
    key_source: str = ""  # e.g. "$OPENAI_API_KEY" or "backends.openai.api_key"
    key_hint: str = ""  # where a key can be set, e.g. "set OPENAI_API_KEY"

    def redact(self, text: str) -> str:
        """``text`` without the API key (providers sometimes echo part of a bad key)."""
        if self.api_key and len(self.api_key) >= 4:
            text = text.replace(self.api_key, "[redacted]")
        return text


class KeyedSettings(Protocol):
    """The settings of a provider that takes an API key."""

    @property
    def base_url(self) -> str: ...
    @property
    def api_key(self) -> str: ...
    @property
    def api_key_env(self) -> str: ...


def keyed_service(backend: str, provider: str, settings: KeyedSettings) -> Service:
    """The service of a provider that takes an API key: from the settings' ``api_key``, else
    from the environment variable ``api_key_env``."""
    api_key_env = settings.api_key_env
    key, source = resolve_api_key(settings.api_key, api_key_env, backend)
    hint = (
        f"set {api_key_env} or backends.{backend}.api_key"
        if api_key_env
        else f"set backends.{backend}.api_key"
    )
    return Service(backend, provider, settings.base_url, key, source, hint)


def resolve_api_key(settings_key: str, env_name: str, backend: str) -> tuple[str, str]:
    """The API key and a description of its source (never the key itself)."""
    if settings_key:
        return settings_key, f"backends.{backend}.api_key"
    if env_name and os.environ.get(env_name):
        return os.environ[env_name], f"${env_name}"
    return "", ""


# -- retry policy ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter, honouring Retry-After."""

    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: RemoteSettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            base_delay_s=settings.backoff_base_s,
            max_delay_s=settings.backoff_max_s,
            max_retry_after_s=settings.max_retry_after_s,
        )

    def delay(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float | None:
        """Seconds to wait after failed attempt ``attempt`` (1-based); None: give up.

        Without Retry-After: a uniformly random wait between half and all of
        ``base * 2**(attempt-1)``, capped at ``max_delay_s``. With it: the server's wait plus up
        to 10 % jitter, unless it exceeds ``max_retry_after_s``.
        """
        if attempt >= self.max_attempts:
            return None
        if retry_after_s is not None:
            if retry_after_s > self.max_retry_after_s:
                return None
            return retry_after_s + rng.uniform(0, 0.1 * retry_after_s)
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return rng.uniform(cap / 2, cap)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


async def retrying(
    attempt: Callable[[], AsyncGenerator[T, None]],
    policy: RetryPolicy,
    *,
    what: str,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncGenerator[T, None]:
    """Run ``attempt()`` and yield its items; repeat it after a retryable RemoteError that came
    before its first item, as ``policy`` allows. Safe to cancel: the running attempt is closed.
    """
    rng = rng or random.Random()
    number = 0
    while True:
        number += 1
        stream = attempt()
        delivered = False
        try:
            async with contextlib.aclosing(stream):
                async for item in stream:
                    delivered = True
                    yield item
            return
        except RemoteError as error:
            if delivered or not error.retryable:
                raise
            wait = policy.delay(number, error.retry_after_s, rng)
            if wait is None:
                if (
                    error.retry_after_s is not None
                    and error.retry_after_s > policy.max_retry_after_s
                ):
                    raise RemoteError(
                        f"{error} (the service asks to retry after {error.retry_after_s:.0f} s)",
                        status=error.status,
                    ) from error
                if number > 1:
                    raise RemoteError(
                        f"{error} (gave up after {number} attempts)", status=error.status
                    ) from error
                raise
            log.warning("%s failed (%s); attempt %d in %.2f s", what, error, number + 1, wait)
            await sleep(wait)


# -- HTTP --------------------------------------------------------------------------------------


def provider_message(body: bytes) -> tuple[str, str]:
    """(message, code) from an error body: OpenAI, ElevenLabs and AllTalk shapes, or text."""
    text = body[:_MAX_ERROR_BODY].decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return _shown(text), ""
    message, code = "", ""
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data))
        if isinstance(error, dict):
            message = str(error.get("message") or error.get("msg") or "")
            code = str(error.get("code") or error.get("status") or error.get("type") or "")
        elif isinstance(error, str):
            message = error
            if isinstance(data.get("message"), str):
                message = f"{error}: {data['message']}" if error != data["message"] else error
        elif isinstance(error, list) and error and isinstance(error[0], dict):
            message = str(error[0].get("msg", ""))
    return _shown(message or text), code


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SHOWN_MESSAGE else text[: _MAX_SHOWN_MESSAGE - 3] + "..."


def classify_status(
    service: Service, status: int, body: bytes, retry_after: str | None
) -> RemoteError:
    """The error for an HTTP error status, with a message safe to show the client."""
    message, code = provider_message(body)
    message = service.redact(message)
    said = f": {message}" if message else ""
    where = f"{service.provider} ({service.base_url})"
    if code in ("insufficient_quota", "quota_exceeded"):
        return RemoteError(f"{where} quota is exhausted (HTTP {status}){said}", status=status)
    if status in (401, 403):
        if service.api_key:
            hint = f"the API key from {service.key_source} was refused; check it"
        else:
            hint = f"no API key is configured; {service.key_hint}"
        return RemoteError(
            f"{where} rejected the request with HTTP {status}{said} ({hint})", status=status
        )
    if status == 429:
        return RemoteError(
            f"{where} is rate limiting (HTTP 429){said}",
            retryable=True,
            retry_after_s=parse_retry_after(retry_after),
            status=status,
        )
    if status == 408 or status >= 500:
        return RemoteError(
            f"{where} failed with HTTP {status}{said}",
            retryable=True,
            retry_after_s=parse_retry_after(retry_after),
            status=status,
        )
    return RemoteError(f"{where} refused the request with HTTP {status}{said}", status=status)


def connect_error(service: Service, exc: Exception) -> RemoteError:
    """The error for a connection that could not be made."""
    if isinstance(exc, httpx.ConnectTimeout | TimeoutError):
        return RemoteError(f"timed out connecting to {service.provider} at {service.base_url}")
    if service.provider == "AllTalk":
        return RemoteError(f"AllTalk is not running at {service.base_url} ({reason(exc)})")
    return RemoteError(
        f"cannot connect to {service.provider} at {service.base_url} ({reason(exc)})"
    )


def reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return _shown(text)


async def stream_http(
    client: httpx.AsyncClient,
    request: httpx.Request,
    service: Service,
    *,
    first_byte_timeout_s: float,
    read_timeout_s: float,
    on_response: Callable[[httpx.Response], None] | None = None,
) -> AsyncGenerator[bytes, None]:
    """Send ``request`` and yield its body as it arrives; classified RemoteErrors on failure.

    The first chunk must arrive within ``first_byte_timeout_s`` of sending, every later one
    within ``read_timeout_s`` of the previous. Closing the generator closes the response.

    Safe to cancel at any point. The exchange runs in a task of its own, which a cancellation
    stops through an anyio cancel scope: httpx's pool (httpcore 1.0) shields its bookkeeping
    from anyio cancellation but not from asyncio's ``Task.cancel()``, and a ``Task.cancel()``
    that lands while the pool closes a response loses that connection for good
    (encode/httpcore#830, #1093): after ``max_concurrency`` such cancels, every request would
    wait for a connection forever. The task reads at most one chunk ahead of the caller.
    """
    handoff: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(maxsize=1)
    scope = anyio.CancelScope()

    async def exchange() -> None:
        with scope:
            try:
                await _exchange(client, request, service, handoff, first_byte_timeout_s,
                                read_timeout_s, on_response)  # fmt: skip
            except Exception as exc:
                await handoff.put(exc)

    task = asyncio.create_task(exchange(), name=f"http-{service.backend}")
    try:
        while (item := await handoff.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        scope.cancel()
        await join(task)  # the response is closed and its connection back in the pool


async def _exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    service: Service,
    handoff: asyncio.Queue[bytes | Exception | None],
    first_byte_timeout_s: float,
    read_timeout_s: float,
    on_response: Callable[[httpx.Response], None] | None,
) -> None:
    """:func:`stream_http`'s request, its body into ``handoff`` and then None."""
    response: httpx.Response | None = None
    try:
        try:
            async with asyncio.timeout(first_byte_timeout_s):
                response = await client.send(request, stream=True)
                if response.status_code >= 400:
                    body = await _read_some(response)
                    raise classify_status(
                        service, response.status_code, body, response.headers.get("retry-after")
                    )
                if on_response is not None:
                    on_response(response)
                chunks = response.aiter_bytes()
                chunk = await anext(chunks, None)
        except TimeoutError:
            raise RemoteError(
                f"{service.provider} ({service.base_url}) sent no audio within "
                f"{first_byte_timeout_s:g} s"
            ) from None
        while chunk is not None:
            await handoff.put(chunk)
            try:
                async with asyncio.timeout(read_timeout_s):
                    chunk = await anext(chunks, None)
            except TimeoutError:
                raise RemoteError(
                    f"{service.provider} ({service.base_url}) stalled: no audio for "
                    f"{read_timeout_s:g} s in the middle of the stream"
                ) from None
        await handoff.put(None)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise connect_error(service, exc) from None
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise RemoteError(
            f"{service.provider} ({service.base_url}) closed the connection in the middle of "
            f"the response ({reason(exc)})",
            retryable=True,
        ) from None
    except httpx.TimeoutException as exc:
        raise RemoteError(f"{service.provider} ({service.base_url}) timed out ({exc!r})") from None
    finally:
        if response is not None:
            with anyio.CancelScope(shield=True):
                await response.aclose()


async def _read_some(response: httpx.Response) -> bytes:
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= _MAX_ERROR_BODY:
            break
    return body


async def get_json(
    client: httpx.AsyncClient,
    service: Service,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float,
) -> Any:
    """GET a JSON document (or plain text, returned as str); classified RemoteErrors."""
    try:
        async with asyncio.timeout(timeout_s):
            response = await client.get(url, headers=headers)
    except TimeoutError:
        raise RemoteError(
            f"{service.provider} ({url}) did not answer within {timeout_s:g} s"
        ) from None
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise connect_error(service, exc) from None
    except httpx.HTTPError as exc:
        raise RemoteError(
            f"{service.provider} ({url}) failed: {reason(exc)}", retryable=True
        ) from None
    if response.status_code >= 400:
        raise classify_status(
            service, response.status_code, response.content, response.headers.get("retry-after")
        )
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            raise RemoteError(f"{service.provider} ({url}) sent invalid JSON") from None
    return response.text
