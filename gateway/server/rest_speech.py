"""One streamed answer to ``POST /v1/audio/speech``: a session without a socket.

The request's ``input`` goes into a :class:`~gateway.core.session.Session` at once, followed by
the end, and the :class:`~gateway.speech.speaker.Speaker` that serves ``/v1/stream`` speaks it
(resampling, seams, fallback, timeouts) with the PCM16 frame encoder, unpaced. Its frames go to
a :class:`ContainerSink`: through a :class:`~gateway.audio.containers.ContainerWriter` into a
bounded queue, which the response sends as chunked transfer while synthesis goes on.

The status is chosen when the first audio (or a failure) comes out of the queue: a backend that
fails before any audio answers 503 with an OpenAI error body. After the first bytes the status
cannot change: a failure then closes the connection without the final chunk, so the client sees
an incomplete body instead of audio that silently stops, and the gateway logs why.

The response owns two tasks: the speaker's (the producer) and one that waits for the client to
go away. A disconnect cancels synthesis at once; both tasks are cancelled and awaited when the
response ends in any way. Every send to the client must complete within
``limits.slow_client_grace_s``, and at shutdown the response ends within the sessions' share of
``server.shutdown_timeout_s``: a client that does not read in time has its connection dropped
(through the :class:`~gateway.server.link.Link`), so it holds neither the response nor the
shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Final

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from gateway.audio.codecs import OpusOptions, Pcm16Encoder
from gateway.audio.containers import MEDIA_TYPES, ContainerWriter, container_writer
from gateway.audio.framing import Frame
from gateway.core.errors import SpeechError
from gateway.core.metrics import SessionMetrics
from gateway.core.protocol import BackendSwitched, ServerMessage
from gateway.core.session import Session
from gateway.server.gateway import Gateway
from gateway.server.link import Link, link_of
from gateway.server.opening import open_speaker
from gateway.server.rest_params import RestError, SpeechParams
from gateway.server.tasks import cancel_and_wait
from gateway.speech.synthesis import StreamSettings

__all__ = ["ContainerSink", "SpeechStream"]

log = logging.getLogger(__name__)

# Encoded frames waiting for the response to send them (20 ms each at the default frame):
# synthesis waits when the client reads slower than this holds.
_QUEUE_FRAMES: Final = 64
# A chunk of the response body gathers what is queued, up to this many bytes.
_MAX_CHUNK: Final = 65536


@dataclass(frozen=True, slots=True)
class _Failure:
    """The speech cannot go on: an error response, or the end of a stream already begun."""

    error: RestError


@dataclass(frozen=True, slots=True)
class _End:
    """All audio is in the queue."""


class _NotReading(Exception):
    """A send to the client did not complete in time."""


_Item = bytes | _Failure | _End


class ContainerSink:
    """A session's frames as the bytes of an audio file, into a bounded queue."""

    def __init__(self, writer: ContainerWriter, queue: asyncio.Queue[_Item]) -> None:
        self._writer = writer
        self._queue = queue

    async def frame(self, frame: Frame) -> None:
        await self._put(self._writer.write(frame.data))

    async def boundary(self) -> None:
        await self._put(self._writer.flush())

    async def finish(self) -> None:
        """End the file (after the last frame)."""
        await self._put(self._writer.finish())

    async def _put(self, data: bytes) -> None:
        if data:
            await self._queue.put(data)


class SpeechStream(Response):
    """The streamed answer to one ``POST /v1/audio/speech`` (an ASGI response)."""

    edge = "rest"

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
        audio = config.audio
        rate = stream.sample_rate
        self._writer = container_writer(
            params.format,
            sample_rate=rate,
            bitrate=config.rest.bitrate,
            opus=OpusOptions(sample_rate=rate, frame_ms=audio.frame_ms, bitrate=audio.bitrate,
                             vbr=audio.vbr.value, application=audio.application.value,
                             complexity=audio.complexity),
        )  # fmt: skip
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(_QUEUE_FRAMES)
        self._sink = ContainerSink(self._writer, self._queue)
        self._session = Session(
            config.segmenter,
            max_pending_chars=len(params.input),
            max_pending_flushes=1,
            max_heard_chars=len(params.input),
        )
        self._metrics = SessionMetrics(sample_rate=rate, started_at=time.monotonic())
        self._speaker = open_speaker(
            gateway,
            self._session,
            stream,
            encoder=Pcm16Encoder(sample_rate=rate, frame_ms=stream.frame_ms),
            sink=self._sink,
            send=self._on_message,
            metrics=self._metrics,
            log=self._log,
            ssml=params.ssml,
            paced=False,  # as fast as the client reads (the bounded queue and TCP hold back)
            stop_on_error=True,
        )
        self._observer = gateway.metrics.session(self._speaker.stream.backend.name)
        self._text = params.input
        self._producer: asyncio.Task[None] | None = None
        self._grace_s = config.limits.slow_client_grace_s
        self._link: Link | None = None
        self._finished = asyncio.Event()  # the response has ended, one way or another
        self._sent_bytes = 0
        self._first_byte_at: float | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._link = link_of(scope)
        listener = asyncio.create_task(_disconnected(receive), name=f"speech-listener-{self.id}")
        with self._gateway.serving(self):
            try:
                self._session.accept_text(self._text)
                self._session.request_end()
                self._metrics.segment_released(time.monotonic())
                self._producer = asyncio.create_task(self._produce(), name=f"speech-{self.id}")
                stream = self._speaker.stream
                self._log.info("speech: %d characters, backend=%s voice=%s format=%s",
                               len(self._text), stream.backend.name, stream.voice,
                               self._format.value)  # fmt: skip
                await self._respond(scope, receive, self._within_grace(send), listener)
            except _NotReading:
                self._log.warning("gave up on a client that does not read: a send did not "
                                  "complete in %g s (%d bytes sent)", self._grace_s,
                                  self._sent_bytes)  # fmt: skip
                self._drop()
            finally:
                self._finished.set()
                await cancel_and_wait(listener)
                await cancel_and_wait(self._producer)
                self._writer.close()
                self._session.close()

    async def shut_down(self, finish_within_s: float) -> None:
        """The gateway is stopping: finish the segment being spoken and send what is queued,
        for at most ``finish_within_s`` in all, then end the response early (a stream already
        begun is cut; a client that has not taken it by then loses its connection)."""
        stop_by = asyncio.get_running_loop().time() + finish_within_s
        task = self._producer
        if task is not None and not task.done():
            self._speaker.draining = True
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout_at(stop_by):
                    await asyncio.shield(task)
            await cancel_and_wait(task)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(stop_by):
                await self._finished.wait()
        if not self._finished.is_set():
            self._log.warning("shutting down: the response is cut after %d bytes (the client "
                              "did not take the rest in time)", self._sent_bytes)  # fmt: skip
            self._drop()

    def _drop(self) -> None:
        """Drop the connection at once (unsent bytes are discarded, not flushed)."""
        if self._link is not None:
            self._link.abort()

    def _within_grace(self, send: Send) -> Send:
        """``send``, each call within ``slow_client_grace_s`` (else :class:`_NotReading`)."""

        async def timed(message: Message) -> None:
            try:
                async with asyncio.timeout(self._grace_s):
                    await send(message)
            except TimeoutError:
                raise _NotReading from None

        return timed

    # -- producer: the speaker -------------------------------------------------------------------

    async def _produce(self) -> None:
        item: _Item
        try:
            finished = await self._speaker.run(_no_more_work)
            if finished:
                await self._sink.finish()
        except SpeechError as failed:
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
        """The speaker's messages: the audio goes to the sink; a switch is worth a log line."""
        self._observer.sent(message, 0.0)
        if isinstance(message, BackendSwitched):
            self._log.warning("switched from %s to %s", message.previous, message.backend)

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
                self._log.info("speech done (first byte after %s ms, %d bytes)",
                               self._first_byte_ms(), self._sent_bytes)  # fmt: skip
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
                await cancel_and_wait(get)
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

    def _first_byte_ms(self) -> str:
        first = self._first_byte_at
        return "n/a" if first is None else str(round((first - self._metrics.started_at) * 1000))


async def _no_more_work() -> None:
    """A speech request's work is all queued before it starts; the speaker never waits."""
    raise RuntimeError("a speech request has no more work to wait for")


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone away (the request body has been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass
