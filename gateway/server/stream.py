"""The WebSocket edge of a session: ``/v1/stream``.

A :class:`Connection` owns two activities: the reader (the handler coroutine itself), which
decodes client messages and drives the pure :class:`~gateway.core.session.Session`, and the
speaker task, which runs :meth:`~gateway.speech.speaker.Speaker.run`: it takes work from the
session in order, runs the backend, shapes and encodes the audio and sends it. The connection
creates, cancels and awaits the speaker task; a cancel stops it before ``cancelled`` is sent, so
no audio of cancelled text can follow the acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from starlette.websockets import WebSocket

from gateway.audio.formats import FRAME_RATES, default_rate
from gateway.core.errors import close_code
from gateway.core.metrics import SessionMetrics
from gateway.core.protocol import (
    PROTOCOL_VERSION,
    AudioFormat,
    Auth,
    Cancel,
    ClientMessage,
    End,
    Error,
    ErrorCode,
    Estimate,
    Estimated,
    Flush,
    ProtocolError,
    Ready,
    ServerMessage,
    Start,
    Text,
    decode_client_message,
)
from gateway.core.ratelimit import TokenBucket
from gateway.core.session import Session, SessionState
from gateway.server.gateway import Gateway
from gateway.server.link import SocketLink, link_of
from gateway.server.opening import frame_encoder, open_speaker, resolve_stream
from gateway.server.outbox import Closed, Outbox
from gateway.server.tasks import cancel_and_wait
from gateway.speech.delivery import MessageSink
from gateway.speech.speaker import Speaker
from gateway.speech.synthesis import StreamSettings

__all__ = ["Connection"]

log = logging.getLogger(__name__)


class Connection:
    """One client on ``/v1/stream``."""

    edge = "stream"

    def __init__(
        self,
        websocket: WebSocket,
        gateway: Gateway,
        *,
        key_id: str | None = None,
        subprotocol: str | None = None,
    ) -> None:
        self._ws = websocket
        self._gateway = gateway
        self._config = gateway.config
        self.key_id = key_id
        self._subprotocol = subprotocol
        self._authenticated = key_id is not None or not gateway.auth.required
        self.id = uuid.uuid4().hex[:12]
        self._log = logging.LoggerAdapter(log, {"session": self.id})
        limits = self._config.limits
        self._session = Session(
            self._config.segmenter,
            max_pending_chars=limits.max_pending_chars,
            max_pending_flushes=limits.max_pending_flushes,
            max_heard_chars=limits.max_heard_chars,
        )
        self._link = link_of(websocket.scope)
        self._outbox = Outbox(websocket, deadline_s=limits.slow_client_grace_s, link=self._link)
        self._flooded = asyncio.Event()
        self._observer = gateway.metrics.session()
        self._work_ready = asyncio.Event()
        self._speaker: Speaker | None = None
        self._speaker_task: asyncio.Task[bool] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._metrics = SessionMetrics(sample_rate=24000, started_at=time.monotonic())
        self._opened_at = time.monotonic()
        self._last_message_at = self._opened_at
        if isinstance(self._link, SocketLink):  # control frames take from the same budget
            self._rate = self._link.rate
            self._link.on_flood = self._flooded.set
        else:
            self._rate = TokenBucket(limits.max_messages_per_s, limits.max_message_burst)
        self._watchdog: asyncio.Task[None] | None = None
        self._start_received = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until the client leaves or the session is done."""
        await self._ws.accept(subprotocol=self._subprotocol)
        self._log.info("session opened (key %s)", self.key_id or "none")
        self._watchdog = asyncio.create_task(self._watch(), name=f"watchdog-{self.id}")
        reader = asyncio.create_task(self._read_loop(), name=f"reader-{self.id}")
        given_up = asyncio.create_task(self._outbox.gave_up.wait(), name=f"give-up-{self.id}")
        flooded = asyncio.create_task(self._flooded.wait(), name=f"flooded-{self.id}")
        try:
            await asyncio.wait({reader, given_up, flooded}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                reader.result()
            elif flooded.done():
                await cancel_and_wait(reader)
                limit = self._config.limits.max_messages_per_s
                await self._end_session(ErrorCode.RATE_LIMITED,
                                        f"more than {limit:g} messages a second (pings count)",
                                        "rate limited")  # fmt: skip
        except Closed:
            pass
        except Exception:
            self._log.exception("session failed")
            await self._fail("internal error; the session is closed")
        finally:
            await cancel_and_wait(reader)
            await cancel_and_wait(given_up)
            await cancel_and_wait(flooded)
            await cancel_and_wait(self._watchdog)
            await self._stop_speaker()
            self._cancel_idle_timer()
            self._session.close()
            self._log.info("session closed")

    async def shut_down(self, finish_within_s: float) -> None:
        """The gateway is stopping: let the current segment finish (for at most
        ``finish_within_s``), report what will not be spoken, close (going away)."""
        speaker, task = self._speaker, self._speaker_task
        if speaker is not None and task is not None:
            speaker.draining = True
            self._work_ready.set()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Closed):
                async with asyncio.timeout(finish_within_s):
                    await asyncio.shield(task)
                if task.done() and not task.cancelled():
                    await speaker.push_out()  # the finished segment's last samples
        await self._end_session(
            ErrorCode.SHUTTING_DOWN, "the gateway is shutting down", "going away"
        )

    async def _end_session(self, error: ErrorCode, message: str, reason: str) -> None:
        """Close the session early: stop speaking, report the text that will not be spoken
        (a fatal error with its character range), close with the error's close code."""
        await self._stop_speaker()
        start, end = self._session.unsettled_range()
        with contextlib.suppress(Closed):
            await self._send(
                Error(error, message, fatal=True, char_start=start if end > start else None,
                      char_end=end if end > start else None)
            )  # fmt: skip
        await self._close(close_code(error), reason)

    async def _watch(self) -> None:
        """Deadlines: a `start` (and credentials) soon after the upgrade, the idle timeout, and
        a client that has left what was sent unread for ``slow_client_grace_s``."""
        limits = self._config.limits
        grace = limits.slow_client_grace_s
        while not self._outbox.closed:
            now = time.monotonic()
            lag = self._link.read_lag_s() if isinstance(self._link, SocketLink) else 0.0
            if lag >= grace:
                self._outbox.give_up(f"nothing read for {lag:.1f} s")
                return
            if not self._authenticated:
                deadline = self._opened_at + self._config.auth.first_message_timeout_s
                if now >= deadline:
                    await self._end_session(ErrorCode.UNAUTHORIZED, "no credentials in time",
                                            "unauthorized")  # fmt: skip
                    return
            elif self._session.state is SessionState.AWAITING_START and not self._start_received:
                deadline = self._opened_at + limits.handshake_timeout_s
                if now >= deadline:
                    message = f"no valid start within {limits.handshake_timeout_s:g} s"
                    await self._end_session(ErrorCode.HANDSHAKE_TIMEOUT, message,
                                            "handshake timeout")  # fmt: skip
                    return
            else:
                deadline = self._last_message_at + limits.idle_timeout_s
                if now >= deadline and self._quiet():
                    message = f"no message for {limits.idle_timeout_s:g} s and nothing to speak"
                    await self._end_session(ErrorCode.IDLE_TIMEOUT, message, "idle timeout")
                    return
                deadline = max(deadline, now + 1.0)
            # The client's reading is looked at again within a tenth of the grace period.
            await asyncio.sleep(max(0.05, min(deadline - now, grace / 10)))

    def _quiet(self) -> bool:
        speaker = self._speaker
        return (
            not self._session.has_work
            and self._session.pending_chars == 0
            and (speaker is None or not speaker.busy)
        )

    async def _read_loop(self) -> None:
        while not self._outbox.closed:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                self._outbox.closed = True
                return
            self._last_message_at = time.monotonic()
            frame = message.get("bytes")
            decoded: ClientMessage | None = None
            try:
                if not self._rate.take(self._last_message_at):
                    limit = self._config.limits.max_messages_per_s
                    raise ProtocolError(
                        ErrorCode.RATE_LIMITED, f"more than {limit:g} messages a second", fatal=True
                    )
                if frame is None:
                    raise ProtocolError(
                        ErrorCode.INVALID_MESSAGE,
                        "text frames are not part of the protocol; send msgpack in binary frames",
                    )
                decoded = decode_client_message(frame)
                if not self._authenticated:
                    await self._authenticate(decoded)
                else:
                    await self._dispatch(decoded)
            except ProtocolError as error:
                ref = error.ref or (decoded.TYPE if decoded is not None else None)
                if error.fatal:
                    await self._stop_speaker()
                    start, end = self._session.unsettled_range()
                    await self._send(
                        Error(error.code, error.message, fatal=True, ref=ref,
                              char_start=start if end > start else None,
                              char_end=end if end > start else None)
                    )  # fmt: skip
                    await self._close(error.close_code, error.message[:120])
                    return
                await self._send(Error(error.code, error.message, ref=ref))

    async def _authenticate(self, message: ClientMessage) -> None:
        if not isinstance(message, Auth):
            reason = "authenticate first: send an API key or token"
            raise ProtocolError(ErrorCode.UNAUTHORIZED, reason, fatal=True)
        origin = self._ws.headers.get("origin")
        key_id = self._gateway.auth.identify(message.token, origin=origin, scope="stream")
        if key_id is None:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "invalid API key or token", fatal=True)
        if (refusal := await self._gateway.admit_waiting(self, key_id)) is not None:
            raise ProtocolError(refusal.code, refusal.reason, fatal=True)
        self.key_id, self._authenticated = key_id, True
        self._log.info("authenticated (key %s)", key_id)

    async def _dispatch(self, message: ClientMessage) -> None:
        match message:
            case Auth():
                pass  # already authenticated (or no authentication needed)
            case Start():
                await self._start(message)
            case Text():
                self._queued(lambda: self._session.accept_text(message.text))
                self._restart_idle_timer()
            case Flush():
                self._queued(lambda: self._session.request_flush(message.id))
            case Cancel():
                await self._cancel(message.id, message.position)
            case End():
                self._queued(self._session.request_end)
            case Estimate():
                await self._estimate(message)

    def _queued(self, request: Callable[[], None]) -> None:
        """Apply a request to the session, note when segments were released, wake the speaker."""
        before = self._session.segments_released
        request()
        if self._session.segments_released > before:
            self._metrics.segment_released(time.monotonic())
        self._work_ready.set()

    async def _estimate(self, message: Estimate) -> None:
        """Answer what speaking the text would cost, on the session's backend (or the named
        one) at its speed; nothing is spoken."""
        speaker = self._speaker
        if message.backend is None and speaker is None:
            raise ProtocolError(
                ErrorCode.NOT_STARTED,
                "'estimate' before 'start' needs a backend: set estimate.backend",
            )
        name = message.backend or (speaker.stream.backend.name if speaker else "")
        speed = message.speed
        if speed is None:
            speed = speaker.stream.speed if speaker is not None else 1.0
        estimate, model = self._gateway.estimate(name, message.text, speed)
        body = estimate.as_dict()
        await self._send(
            Estimated(message.id, name, model, body["chars"], body["audio_s"], body["cost_usd"])
        )

    # -- start ---------------------------------------------------------------------------------

    async def _start(self, start: Start) -> None:
        if self._session.state is not SessionState.AWAITING_START:
            raise ProtocolError(ErrorCode.ALREADY_STARTED, "the session has already started")
        self._start_received = True  # waiting for a loading backend is start_timeout_s's job
        try:
            stream = await self._negotiate(start)
        finally:
            self._start_received = False
        rate = stream.sample_rate  # backends' audio is resampled to it
        self._metrics.sample_rate = rate
        encoder = frame_encoder(self._config.audio, stream)
        self._speaker = open_speaker(
            self._gateway,
            self._session,
            stream,
            encoder=encoder,
            sink=MessageSink(self._send),
            send=self._send,
            metrics=self._metrics,
            log=self._log,
            short_first_segment=start.short_first_segment,
            ssml=bool(start.ssml),
        )
        await self._send(
            Ready(
                protocol=PROTOCOL_VERSION,
                session=self.id,
                backend=stream.backend.name,
                voice=stream.voice,
                lang=stream.lang,
                speed=stream.speed,
                format=stream.format.value,
                sample_rate=rate,
                channels=1,
                frame_samples=encoder.frame_samples,
                bitrate=stream.bitrate if stream.format is AudioFormat.OPUS else None,
                preskip=encoder.preskip,
                max_message_bytes=self._config.limits.max_message_bytes,
                max_pending_chars=self._config.limits.max_pending_chars,
                max_heard_chars=self._config.limits.max_heard_chars,
            )
        )
        self._start_speaker()
        self._log.info("started: backend=%s voice=%s", stream.backend.name, stream.voice)

    async def _negotiate(self, start: Start) -> StreamSettings:
        audio = self._config.audio
        rates = FRAME_RATES[start.format or audio.format]
        rate = start.sample_rate or default_rate(rates)
        stream = await resolve_stream(
            self._gateway, backend=start.backend, voice=start.voice, lang=start.lang,
            speed=start.speed, format=start.format, bitrate=start.bitrate,
            frame_ms=start.frame_ms, sample_rate=rate, key_id=self.key_id,
            lexicon=start.lexicon or (),
        )  # fmt: skip
        if rate not in rates:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"start.sample_rate: {stream.format.value} streams at "
                f"{', '.join(map(str, rates))} Hz, not {rate}",
            )
        if rate * stream.frame_ms % 1000:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"start.frame_ms: {stream.frame_ms} ms is not a whole number of samples at "
                f"{rate} Hz; use a longer frame",
            )
        return stream

    # -- the speaker task and cancel -------------------------------------------------------------

    def _start_speaker(self) -> None:
        assert self._speaker is not None
        self._speaker_task = asyncio.create_task(self._speak(self._speaker),
                                                 name=f"speaker-{self.id}")  # fmt: skip

    async def _speak(self, speaker: Speaker) -> bool:
        try:
            if await speaker.run(self._wait_for_work):
                await self._close(1000, "done")
        except Closed:
            pass
        except Exception:
            self._log.exception("speaker failed")
            await self._fail("internal error while speaking; the session is closed")
        return True

    async def _wait_for_work(self) -> None:
        self._work_ready.clear()
        await self._work_ready.wait()

    async def _cancel(self, request_id: int | str | None, position: int | None) -> None:
        speaker = self._speaker
        if speaker is None:
            raise ProtocolError(ErrorCode.NOT_STARTED, "cancel before start: nothing to cancel")
        if speaker.finishing:
            await speaker.cancel_while_finishing(request_id, position)
            return
        await self._stop_speaker()
        await speaker.cut(request_id, position)
        self._start_speaker()

    async def _stop_speaker(self) -> None:
        task, self._speaker_task = self._speaker_task, None
        await cancel_and_wait(task)

    # -- idle release ----------------------------------------------------------------------------

    def _restart_idle_timer(self) -> None:
        self._cancel_idle_timer()
        delay_ms = self._config.session.max_buffer_delay_ms
        if delay_ms and self._session.has_pending_text:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(delay_ms / 1000, self._release_idle)

    def _release_idle(self) -> None:
        self._idle_timer = None
        self._queued(self._session.release_idle)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    # -- sending -------------------------------------------------------------------------------

    async def _send(self, message: ServerMessage) -> None:
        started = time.perf_counter()
        await self._outbox.send(message)
        self._observer.sent(message, time.perf_counter() - started)

    async def _close(self, code: int, reason: str) -> None:
        await self._outbox.close(code, reason)

    async def _fail(self, message: str) -> None:
        start, end = self._session.unsettled_range()
        with contextlib.suppress(Closed):
            await self._send(
                Error(ErrorCode.INTERNAL_ERROR, message, fatal=True,
                      char_start=start if end > start else None,
                      char_end=end if end > start else None)
            )  # fmt: skip
        await self._close(close_code(ErrorCode.INTERNAL_ERROR), "internal error")
