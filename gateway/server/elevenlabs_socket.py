"""One client on an ElevenLabs-compatible WebSocket: ``stream-input`` (one stream) or
``multi-stream-input`` (up to ``elevenlabs_api.max_contexts`` contexts at once).

An :class:`ElevenLabsSocket` owns three tasks: the reader (client messages, in order), the writer
(:class:`~gateway.server.elevenlabs_outbox.SocketOutbox`) and a watchdog (inactivity, the key
that has to come in the first message); each context owns its speaker task. The reader routes
each message by content (docs/elevenlabs.md): ``close_socket``, ``close_context``, text (which
opens a context the first time its id is seen), keep-alives. A ``close_context`` after the
context's input ended (a flush without text) lets it speak to the end; any other close
interrupts it at once. Either way the context's slot is free again at once and it ends with
``isFinal``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Final

from starlette.websockets import WebSocket

from gateway.core.elevenlabs_wire import (
    INVALID_INPUT,
    ClientMessage,
    StreamQuery,
    WireError,
    error_message,
    parse_message,
)
from gateway.core.errors import ProtocolError
from gateway.core.ratelimit import TokenBucket
from gateway.server.elevenlabs_context import Context, ContextOptions, ContextState
from gateway.server.elevenlabs_outbox import Closed, SocketOutbox
from gateway.server.gateway import Gateway
from gateway.server.tasks import cancel_and_wait

__all__ = ["ElevenLabsSocket", "Opened"]

log = logging.getLogger(__name__)

# How long ``close_socket`` waits for the contexts that are speaking their last words.
_CLOSE_DRAIN_S: Final = 30.0
_WATCH_INTERVAL_S: Final = 0.25


@dataclass(frozen=True, slots=True)
class Opened:
    """What the handshake settled: the contexts' options, the query, and the caller's key
    (``needs_key``: authentication is required and the first message must carry it)."""

    options: ContextOptions
    query: StreamQuery
    key_id: str | None
    needs_key: bool


class ElevenLabsSocket:
    """One ElevenLabs-compatible connection (``single``: the ``stream-input`` endpoint)."""

    edge = "elevenlabs"

    def __init__(
        self, websocket: WebSocket, gateway: Gateway, opened: Opened, *, single: bool
    ) -> None:
        self._ws = websocket
        self._gateway = gateway
        self._opened = opened
        self._single = single
        self.key_id = opened.key_id
        self._needs_key = opened.needs_key
        self.id = uuid.uuid4().hex[:12]
        self._log = logging.LoggerAdapter(log, {"session": self.id})
        limits = gateway.config.limits
        self._outbox = SocketOutbox(websocket, send_timeout_s=limits.slow_client_grace_s)
        self._rate = TokenBucket(limits.max_messages_per_s, limits.max_message_burst)
        self._max_contexts = 1 if single else gateway.config.elevenlabs_api.max_contexts
        self._inactivity_s = float(opened.query.inactivity_timeout_s)
        self._contexts: dict[str | None, Context] = {}  # open, by id (None: stream-input's)
        self._draining: set[Context] = set()  # closed by the client, speaking their last words
        self._opened_at = self._last_message_at = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes."""
        await self._ws.accept()
        self._log.info("elevenlabs %s opened (key %s)",
                       "stream-input" if self._single else "multi-stream-input",
                       self.key_id or "none")  # fmt: skip
        writer = asyncio.create_task(self._outbox.run(), name=f"xi-writer-{self.id}")
        reader = asyncio.create_task(self._read_loop(), name=f"xi-reader-{self.id}")
        watchdog = asyncio.create_task(self._watch(), name=f"xi-watchdog-{self.id}")
        tasks = (writer, reader, watchdog)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(reader)
            await cancel_and_wait(watchdog)
            for context in self._all_contexts():
                await context.stop()
            await cancel_and_wait(writer)
            for task in tasks:  # every task's end is looked at, so none is left unretrieved
                error = None if task.cancelled() else task.exception()
                if error is not None and not isinstance(error, Closed):
                    self._log.error("elevenlabs socket failed", exc_info=error)
            reading = " (the client stopped reading)" if self._outbox.given_up else ""
            self._log.info("elevenlabs socket closed%s", reading)

    async def shut_down(self, finish_within_s: float) -> None:
        """The gateway is stopping: every context finishes the segment it speaks (for at most
        ``finish_within_s``), says what it will not speak, ends; then close (going away)."""
        with contextlib.suppress(Closed):
            contexts = self._all_contexts()
            await asyncio.gather(*(c.wind_down(finish_within_s) for c in contexts))
            await self._outbox.close(1001, "the gateway is shutting down")

    @property
    def contexts_speaking(self) -> int:
        """Contexts whose speaker task still runs (open ones, and closed ones that finish)."""
        return sum(context.speaking for context in self._all_contexts())

    def _all_contexts(self) -> list[Context]:
        return [*self._contexts.values(), *self._draining]

    # -- reading -----------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while not self._outbox.closed:
            frame = await self._ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            now = self._last_message_at = time.monotonic()
            if not self._rate.take(now):
                limit = self._gateway.config.limits.max_messages_per_s
                await self._fail("rate_limited", f"more than {limit:g} messages a second")
                return
            message: ClientMessage | None = None
            try:
                text = frame.get("text")
                if text is None:
                    raise WireError(INVALID_INPUT, "send JSON in text frames, not binary frames")
                message = parse_message(text)
                await self._handle(message)
            except WireError as error:
                context_id = message.context_id if message is not None else None
                await self._outbox.message(error_message(error.code, error.message, context_id))

    async def _handle(self, message: ClientMessage) -> None:
        if self._needs_key and not await self._authenticate(message):
            return
        if self._single:
            await self._handle_single(message)
            return
        if message.close_socket:
            await self._close_socket()
            return
        context_id = message.context_id
        if message.close_context:
            if context_id is None:
                raise WireError(INVALID_INPUT, "close_context needs a context_id")
            await self._close_context(context_id)
            return
        context = self._contexts.get(context_id)
        if context is None:
            if not message.text:  # a keep-alive or a bare flush never opens a context
                return
            if context_id is None:
                raise WireError(INVALID_INPUT, "multi-stream-input needs a context_id with text")
            context = await self._open(context_id, message)
            if context is None:
                return
        await self._accept(context, message)

    async def _handle_single(self, message: ClientMessage) -> None:
        context = self._contexts.get(None)
        if context is None:
            if message.text == "" or message.close_socket:
                await self._outbox.close(1000, "no text")  # the end before any text
                return
            context = await self._open(None, message)
            if context is None:
                return
        if message.text == "" or message.close_socket:
            context.end()  # the end of input: speak the rest, isFinal, close
            return
        await self._accept(context, message)

    async def _accept(self, context: Context, message: ClientMessage) -> None:
        try:
            context.accept(message)
        except ProtocolError as error:  # a limit of the session: this context cannot go on
            if self._single:
                await self._fail(error.code.value, error.message)
                return
            await self._outbox.message(error_message(error.code.value, error.message, context.id))
            self._contexts.pop(context.id, None)
            await context.abort()

    async def _authenticate(self, message: ClientMessage) -> bool:
        """The first message must carry a valid key when the handshake had none."""
        key_id = self._gateway.auth.identify(
            message.api_key, origin=self._ws.headers.get("origin"), scope="stream"
        )
        if key_id is None:
            await self._fail("invalid_api_key", "a valid API key is required: send the "
                             "xi-api-key header, or xi_api_key in the first message")  # fmt: skip
            return False
        if (refusal := await self._gateway.admit_waiting(self, key_id)) is not None:
            await self._fail(refusal.code.value, refusal.reason)
            return False
        self.key_id, self._needs_key = key_id, False
        return True

    # -- contexts ----------------------------------------------------------------------------------

    async def _open(self, context_id: str | None, message: ClientMessage) -> Context | None:
        if any(c.id == context_id for c in self._draining):
            raise WireError(INVALID_INPUT, f"context {context_id!r} is still finishing its last "
                            "words; open a new context with another context_id")  # fmt: skip
        if len(self._contexts) >= self._max_contexts:
            text = (f"Maximum simultaneous contexts per WebSocket connection exceeded "
                    f"({self._max_contexts}). Please close an existing context before opening a "
                    "new one.")  # fmt: skip
            await self._fail("max_active_conversations", text, context_id)
            return None
        context = Context(self._gateway, self._opened.options, context_id=context_id,
                          outbox=self._outbox, on_finished=self._finished, speed=message.speed,
                          schedule=message.schedule, log=self._log)  # fmt: skip
        self._contexts[context_id] = context
        context.start()
        self._log.info("context %s opened", context_id)
        return context

    async def _close_context(self, context_id: str) -> None:
        """The client's ``close_context``: drain (its input ended) or interrupt; an unknown or
        finished context is ignored, a second close of a draining one interrupts it."""
        context = self._contexts.pop(context_id, None)
        if context is None:
            draining = [c for c in self._draining if c.id == context_id]
            for found in draining:
                await found.abort()
            return
        if context.close():
            self._draining.add(context)
        else:
            await context.abort()

    async def _finished(self, context: Context) -> None:
        """A context queued its ``isFinal``."""
        self._draining.discard(context)
        if self._contexts.get(context.id) is context:
            del self._contexts[context.id]
        if self._single and not context.aborted:
            await self._outbox.close(1000, "done")

    async def _close_socket(self) -> None:
        """``close_socket``: contexts whose input ended speak to the end, the others stop;
        every one ends with ``isFinal``; then the socket closes (1000)."""
        for context_id in list(self._contexts):
            await self._close_context(str(context_id))
        pending = [c.done.wait() for c in self._draining]
        if pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_DRAIN_S):
                    await asyncio.gather(*pending)
        for context in list(self._draining):
            await context.abort()
        await self._outbox.close(1000, "")

    # -- deadlines ---------------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Inactivity (``inactivity_timeout``) and the key that must come first."""
        key_deadline = self._opened_at + self._gateway.config.auth.first_message_timeout_s
        while not self._outbox.closed:
            now = time.monotonic()
            if self._needs_key and now >= key_deadline:
                await self._fail("invalid_api_key", "no API key in time")
                return
            for context in list(self._contexts.values()):
                if context.idle and now - context.last_message_at >= self._inactivity_s:
                    await self._time_out(context)
            if (not self._single and not self._contexts and not self._draining
                    and now - self._last_message_at >= self._inactivity_s):  # fmt: skip
                await self._fail("input_timeout_exceeded", self._timeout_text())
                return
            await asyncio.sleep(_WATCH_INTERVAL_S)

    async def _time_out(self, context: Context) -> None:
        if self._single:
            await self._fail("input_timeout_exceeded", self._timeout_text())
            return
        self._log.info("context %s closed after %g s without a message", context.id,
                       self._inactivity_s)  # fmt: skip
        self._contexts.pop(context.id, None)
        if context.state is ContextState.OPEN:
            await context.abort()

    def _timeout_text(self) -> str:
        return (f"Have not received a new text input within the timeout of "
                f"{self._inactivity_s:g} seconds. Streaming input terminated.")  # fmt: skip

    async def _fail(self, code: str, text: str, context_id: str | None = None) -> None:
        """A fatal error: say why, stop every context, close (1008)."""
        self._log.info("elevenlabs socket closed: %s", text)
        await self._outbox.message(error_message(code, text, context_id))
        for context in self._all_contexts():
            await context.abort()
        await self._outbox.close(1008, text)
