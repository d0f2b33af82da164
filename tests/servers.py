"""Serving test apps on loopback, and injecting faults into their HTTP responses.

:func:`serve_app` runs any ASGI app under uvicorn on an ephemeral 127.0.0.1 port in the running
event loop (like the gateway fixture does). :class:`FaultInjector` wraps an app and applies, to
the next requests that match, one queued fault each: an error status (with Retry-After), a slow
first byte, a body cut mid-way (the connection is dropped), a stall, or a hang. It records every
request it sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")


@dataclass
class ServedApp:
    """An app served on ``http://127.0.0.1:{port}``."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def serve_app(app: ASGIApp) -> ServedApp:
    """Serve ``app`` on an ephemeral loopback port and return once it listens."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="critical",
        lifespan="off",
        ws="websockets-sansio",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name="test-app")
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the test server stopped during start-up")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return ServedApp(server, task, port)


@contextlib.asynccontextmanager
async def served(app: ASGIApp) -> AsyncIterator[ServedApp]:
    running = await serve_app(app)
    try:
        yield running
    finally:
        await running.stop()


async def eventually(condition: Callable[[], bool], *, deadline_s: float) -> None:
    """Wait until ``condition()`` holds (state a server owns); TimeoutError after the deadline."""
    async with asyncio.timeout(deadline_s):
        while not condition():  # noqa: ASYNC110 - the state belongs to another component
            await asyncio.sleep(0.01)


async def drain_into(received: list[T], stream: AsyncIterator[T]) -> None:
    """Append every item of ``stream`` to ``received`` (which keeps them if it raises)."""
    async for item in stream:
        received.append(item)


def unused_port() -> int:
    """A loopback port with nothing listening (for connection-refused tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- faults ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """Answer with this status and JSON body instead of calling the app."""

    code: int
    body: Any = None
    retry_after: str | None = None


@dataclass(frozen=True)
class SlowFirstByte:
    """Wait this long before the app answers."""

    delay_s: float


@dataclass(frozen=True)
class Cut:
    """Drop the connection after this many body bytes."""

    after_bytes: int


@dataclass(frozen=True)
class Stall:
    """Stop sending (keep the connection open) after this many body bytes."""

    after_bytes: int


@dataclass(frozen=True)
class Hang:
    """Never answer (until the client goes away)."""


Fault = Status | SlowFirstByte | Cut | Stall | Hang


class _Dropped(Exception):
    """Raised into the server to drop a connection mid-body."""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FaultInjector:
    """ASGI middleware: queued faults for requests whose path starts with ``prefix``."""

    app: ASGIApp
    prefix: str = "/"
    faults: deque[Fault] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    disconnects: int = 0  # streamed responses whose client went away before the end
    completed: int = 0  # responses sent to the end

    def add(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def matching(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.requests.append(Recorded(scope["method"], scope["path"], headers, body))
        fault = self.faults.popleft() if self.faults else None
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if isinstance(fault, Status):
            await _send_status(send, fault)
            return
        if isinstance(fault, Hang):
            await _wait_for_disconnect(receive)
            self.disconnects += 1
            return
        if isinstance(fault, SlowFirstByte):
            await asyncio.sleep(fault.delay_s)
        sent = 0

        async def faulty_send(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.body" and isinstance(fault, Cut | Stall):
                chunk = message.get("body", b"")
                room = fault.after_bytes - sent
                if len(chunk) > room:
                    if room > 0:
                        await send({**message, "body": chunk[:room], "more_body": True})
                    sent = fault.after_bytes
                    if isinstance(fault, Cut):
                        raise _Dropped
                    await asyncio.Event().wait()
                sent += len(chunk)
            await send(message)

        try:
            await self.app(scope, replay, faulty_send)
            self.completed += 1
        except _Dropped:
            return  # uvicorn closes the connection: the response is incomplete
        except (asyncio.CancelledError, OSError):
            self.disconnects += 1
            raise


async def _send_status(send: Send, fault: Status) -> None:
    body = json.dumps(fault.body if fault.body is not None else {"error": "injected"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if fault.retry_after is not None:
        headers.append((b"retry-after", fault.retry_after.encode()))
    await send({"type": "http.response.start", "status": fault.code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
