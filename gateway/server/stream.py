"""The WebSocket edge of a session: ``/v1/stream``.

A :class:`Connection` owns two activities: the reader (the handler coroutine itself), which
decodes client messages and drives the pure :class:`~gateway.core.session.Session`, and the
speaker task, which takes work from the session in order, runs the backend, shapes and encodes
the audio and sends it. The connection creates, cancels and awaits the speaker; a cancel stops
it before ``cancelled`` is sent, so no audio of cancelled text can follow the acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.audio.codecs import FrameEncoder, OpusEncoder, OpusOptions, Pcm16Encoder
from gateway.audio.framing import AudioOut, Frame
from gateway.audio.resample import ResampledChunks
from gateway.backends.base import AudioChunk, Backend, BackendError, SynthesisRequest
from gateway.core.metrics import SessionMetrics
from gateway.core.protocol import (
    PROTOCOL_VERSION,
    Audio,
    AudioFormat,
    Cancel,
    Cancelled,
    ClientMessage,
    Done,
    End,
    Error,
    ErrorCode,
    Flush,
    Flushed,
    ProtocolError,
    Ready,
    SegmentEnd,
    SegmentStart,
    ServerMessage,
    Start,
    Text,
    decode_client_message,
    encode_server_message,
)
from gateway.core.seams import SeamConfig, SeamShaper
from gateway.core.segmenter import Boundary
from gateway.core.session import EndMark, FlushMark, Session, SessionState, SpeakSegment

if TYPE_CHECKING:
    from gateway.server.app import Gateway

__all__ = ["Connection"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Stream:
    """What ``start`` settled: the backend and the audio parameters of this session."""

    backend: Backend
    voice: str
    lang: str
    speed: float
    format: AudioFormat
    bitrate: int
    frame_ms: int


class _Closed(Exception):
    """The socket is gone; the session ends."""


class Connection:
    """One client on ``/v1/stream``."""

    def __init__(self, websocket: WebSocket, gateway: Gateway) -> None:
        self._ws = websocket
        self._gateway = gateway
        self._config = gateway.config
        self.id = uuid.uuid4().hex[:12]
        self._log = logging.LoggerAdapter(log, {"session": self.id})
        self._session = Session(
            self._config.segmenter,
            max_pending_chars=self._config.limits.max_pending_chars,
            max_pending_flushes=self._config.limits.max_pending_flushes,
        )
        self._send_lock = asyncio.Lock()
        self._work_ready = asyncio.Event()
        self._speaker: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._stream: _Stream | None = None
        self._audio: AudioOut | None = None
        self._shaper: SeamShaper | None = None
        self._unsent: deque[Frame] = deque()
        self._finishing = False
        self._closed = False
        self._metrics = SessionMetrics(sample_rate=24000, started_at=time.monotonic())

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until the client leaves or the session is done."""
        await self._ws.accept()
        self._log.info("session opened")
        try:
            await self._read_loop()
        except _Closed:
            pass
        except Exception:
            self._log.exception("session failed")
            await self._fail("internal error; the session is closed")
        finally:
            await self._stop_speaker()
            self._cancel_idle_timer()
            self._session.close()
            self._log.info("session closed")

    async def shut_down(self) -> None:
        """The gateway is stopping: close with 1001 (going away)."""
        await self._stop_speaker()
        await self._close(1001, "the gateway is shutting down")

    async def _read_loop(self) -> None:
        while not self._closed:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                self._closed = True
                return
            frame = message.get("bytes")
            decoded: ClientMessage | None = None
            try:
                if frame is None:
                    raise ProtocolError(
                        ErrorCode.INVALID_MESSAGE,
                        "text frames are not part of the protocol; send msgpack in binary frames",
                    )
                decoded = decode_client_message(frame)
                await self._dispatch(decoded)
            except ProtocolError as error:
                ref = decoded.TYPE if decoded is not None else None
                await self._send(Error(error.code, error.message, fatal=error.fatal, ref=ref))
                if error.fatal:
                    await self._close(1008, error.message[:120])

    async def _dispatch(self, message: ClientMessage) -> None:
        match message:
            case Start():
                await self._start(message)
            case Text():
                self._queued(lambda: self._session.accept_text(message.text))
                self._restart_idle_timer()
            case Flush():
                self._queued(lambda: self._session.request_flush(message.id))
            case Cancel():
                await self._cancel(message.id)
            case End():
                self._queued(self._session.request_end)

    def _queued(self, request: Callable[[], None]) -> None:
        """Apply a request to the session, note when segments were released, wake the speaker."""
        before = self._session.segments_released
        request()
        if self._session.segments_released > before:
            self._metrics.segment_released(time.monotonic())
        self._work_ready.set()

    # -- start ---------------------------------------------------------------------------------

    async def _start(self, start: Start) -> None:
        if self._session.state is not SessionState.AWAITING_START:
            raise ProtocolError(ErrorCode.ALREADY_STARTED, "the session has already started")
        stream = await self._negotiate(start)
        segmenter = self._config.segmenter
        if start.short_first_segment is not None:
            segmenter = dataclasses.replace(
                segmenter, short_first_segment=start.short_first_segment
            )
        self._session.begin(segmenter)
        self._stream = stream
        self._metrics.sample_rate = self._config.audio.sample_rate
        encoder = self._encoder(stream)
        self._audio = AudioOut(encoder)
        self._shaper = SeamShaper(self._seam_config(self._config.audio.sample_rate))
        await self._send(
            Ready(
                protocol=PROTOCOL_VERSION,
                session=self.id,
                backend=stream.backend.name,
                voice=stream.voice,
                lang=stream.lang,
                speed=stream.speed,
                format=stream.format.value,
                sample_rate=self._config.audio.sample_rate,
                channels=1,
                frame_samples=encoder.frame_samples,
                bitrate=stream.bitrate if stream.format is AudioFormat.OPUS else None,
                preskip=encoder.preskip,
                max_message_bytes=self._config.limits.max_message_bytes,
                max_pending_chars=self._config.limits.max_pending_chars,
            )
        )
        self._speaker = asyncio.create_task(self._speak_loop(), name=f"speaker-{self.id}")
        self._log.info("started: backend=%s voice=%s", stream.backend.name, stream.voice)

    async def _negotiate(self, start: Start) -> _Stream:
        audio = self._config.audio
        name = start.backend or self._config.session.default_backend
        backend = await self._gateway.ready_backend(name)
        voice = start.voice or backend.default_voice
        if voice not in {v.id for v in backend.voices()}:
            raise ProtocolError(
                ErrorCode.UNKNOWN_VOICE,
                f"unknown voice {voice!r} for backend {name!r}; voices: "
                + ", ".join(v.id for v in backend.voices()),
            )
        lang = start.lang or backend.default_lang
        if lang not in backend.languages:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_LANGUAGE,
                f"language {lang!r} is not supported by {name!r}; languages: "
                + ", ".join(backend.languages),
            )
        if start.sample_rate is not None and start.sample_rate != audio.sample_rate:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"start.sample_rate: this version streams at {audio.sample_rate} Hz only",
            )
        return _Stream(
            backend=backend,
            voice=voice,
            lang=lang,
            speed=start.speed if start.speed is not None else 1.0,
            format=start.format or audio.format,
            bitrate=start.bitrate or audio.bitrate,
            frame_ms=start.frame_ms or audio.frame_ms,
        )

    def _encoder(self, stream: _Stream) -> FrameEncoder:
        rate = self._config.audio.sample_rate
        if stream.format is AudioFormat.PCM16:
            return Pcm16Encoder(sample_rate=rate, frame_ms=stream.frame_ms)
        audio = self._config.audio
        return OpusEncoder(
            OpusOptions(
                sample_rate=rate,
                frame_ms=stream.frame_ms,
                bitrate=stream.bitrate,
                vbr=audio.vbr.value,
                application=audio.application.value,
                complexity=audio.complexity,
            )
        )

    def _seam_config(self, sample_rate: int) -> SeamConfig:
        seams = self._config.seams
        return SeamConfig(
            sample_rate=sample_rate,
            lead_ms=seams.lead_ms,
            sentence_pause_ms=seams.sentence_pause_ms,
            line_pause_ms=seams.line_pause_ms,
            clause_pause_ms=seams.clause_pause_ms,
            word_pause_ms=seams.word_pause_ms,
            fade_ms=seams.fade_ms,
            silence_db=seams.silence_db,
        )

    # -- cancel --------------------------------------------------------------------------------

    async def _cancel(self, request_id: int | str | None) -> None:
        if self._finishing:
            # The end is being sent: all audio is out already and nothing is left to drop.
            end, received = self._require_audio().sent_end, self._session.received
            await self._send(Cancelled(request_id, end, received, received, ""))
            return
        await self._stop_speaker()
        outcome = self._session.cancel()
        audio = self._require_audio()
        seam = self._seam_config(self._config.audio.sample_rate)
        await self._send_frames(audio.cut(seam.samples(seam.fade_ms)))  # unsent ones go first
        self._shaper = SeamShaper(seam)
        for flush_id in outcome.dropped_flushes:
            await self._send(Flushed(flush_id, audio.sent_end, cancelled=True))
        await self._send(
            Cancelled(
                request_id,
                audio.sent_end,
                outcome.unspoken_start,
                outcome.unspoken_end,
                outcome.unspoken_text,
            )
        )
        self._log.info("cancelled %d characters", outcome.unspoken_end - outcome.unspoken_start)
        self._speaker = asyncio.create_task(self._speak_loop(), name=f"speaker-{self.id}")

    # -- the speaker ---------------------------------------------------------------------------

    async def _speak_loop(self) -> None:
        try:
            while True:
                work = self._session.next_work()
                if work is None:
                    self._work_ready.clear()
                    await self._work_ready.wait()
                    continue
                match work:
                    case SpeakSegment():
                        await self._speak(work)
                    case FlushMark():
                        await self._send_frames(self._require_audio().drain())
                        await self._send(Flushed(work.id, self._require_audio().sent_end))
                        self._session.flush_answered(work)
                    case EndMark():
                        await self._finish()
                        return
        except _Closed:
            return
        except Exception:
            self._log.exception("speaker failed")
            await self._fail("internal error while speaking; the session is closed")

    async def _speak(self, work: SpeakSegment) -> None:
        segment = work.segment
        if segment.blank:
            self._session.segment_finished(work, spoken=True)
            return
        stream, audio, shaper = self._require_stream(), self._require_audio(), self._shaper
        assert shaper is not None
        await self._send(
            SegmentStart(
                segment=work.index,
                text=segment.text,
                char_start=segment.start,
                char_end=segment.end,
                sample_start=audio.cursor,
                boundary=segment.boundary.value,
                released_by=work.released_by.value,
                received_chars=work.received_chars,
            )
        )
        request = SynthesisRequest(segment.text, stream.voice, stream.lang, stream.speed)
        # The one place audio is resampled: backend's native rate -> the stream rate.
        synthesis = _TimedStream(
            ResampledChunks(
                stream.backend.synthesize(request),
                stream.backend.sample_rate,
                self._config.audio.sample_rate,
            )
        )
        piece_end: Boundary | None = None
        ok = True
        try:
            async with contextlib.aclosing(synthesis):
                async for chunk in synthesis:
                    if piece_end is not None:
                        await self._emit(shaper.end_piece(piece_end))
                    await self._emit(shaper.push(chunk.pcm))
                    piece_end = chunk.piece_end
        except BackendError as error:
            ok = False
            await self._send(
                Error(
                    ErrorCode.BACKEND_ERROR,
                    f"{stream.backend.name}: {error}",
                    char_start=segment.start,
                    char_end=segment.end,
                )
            )
        await self._emit(shaper.end_piece(segment.boundary))
        self._metrics.segment_synthesized(synthesis.seconds, synthesis.samples, ok=ok)
        await self._send(SegmentEnd(work.index, audio.cursor, round(synthesis.seconds * 1000, 1)))
        self._session.segment_finished(work, spoken=ok)

    async def _finish(self) -> None:
        self._finishing = True
        audio = self._require_audio()
        await self._send_frames(audio.drain())
        session = self._session
        metrics = self._metrics.summary(
            now=time.monotonic(),
            timeline_samples=audio.sent_end,
            chars={
                "chars_received": session.received,
                "chars_spoken": session.chars_spoken,
                "chars_unspoken": session.chars_unspoken,
            },
        )
        await self._send(Done(metrics))
        self._log.info("done: %s", metrics)
        await self._close(1000, "done")

    async def _stop_speaker(self) -> None:
        speaker, self._speaker = self._speaker, None
        if speaker is None:
            return
        speaker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await speaker

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

    async def _emit(self, pcm: NDArray[np.float32]) -> None:
        """Encode and send audio a frame at a time, so a cancel leaves at most a frame unsent."""
        audio = self._require_audio()
        step = audio.frame_samples
        for start in range(0, len(pcm), step):
            await self._send_frames(audio.write(pcm[start : start + step]))

    async def _send_frames(self, frames: Iterable[Frame]) -> None:
        """Send frames in order. Frames made but not sent stay queued for the next call, so the
        timeline never has a hole: a cancel sends them before its cut."""
        self._unsent.extend(frames)
        while self._unsent:
            frame = self._unsent[0]
            await self._send(Audio(frame.seq, frame.sample_start, frame.data))
            self._unsent.popleft()  # no await since the write: a cancel cannot land in between
            self._metrics.frame_sent(len(frame.data), time.monotonic())

    async def _send(self, message: ServerMessage) -> None:
        data = encode_server_message(message)
        async with self._send_lock:
            if self._closed:
                raise _Closed
            try:
                await self._ws.send_bytes(data)
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                self._closed = True
                raise _Closed from exc

    async def _close(self, code: int, reason: str) -> None:
        async with self._send_lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(Exception):
                await self._ws.close(code, reason)

    async def _fail(self, message: str) -> None:
        with contextlib.suppress(_Closed):
            await self._send(Error(ErrorCode.INTERNAL_ERROR, message, fatal=True))
        await self._close(1011, "internal error")

    def _require_stream(self) -> _Stream:
        assert self._stream is not None, "the speaker runs only after start"
        return self._stream

    def _require_audio(self) -> AudioOut:
        assert self._audio is not None, "the speaker runs only after start"
        return self._audio


class _TimedStream:
    """A backend's chunk stream that counts the time spent waiting on it and its samples."""

    def __init__(self, chunks: AsyncIterator[AudioChunk]) -> None:
        self._chunks = chunks
        self.seconds = 0.0
        self.samples = 0

    def __aiter__(self) -> _TimedStream:
        return self

    async def __anext__(self) -> AudioChunk:
        started = time.perf_counter()
        try:
            chunk = await anext(self._chunks)
        finally:
            self.seconds += time.perf_counter() - started
        self.samples += len(chunk.pcm)
        return chunk

    async def aclose(self) -> None:
        """Close the backend's generator, so a cancelled segment stops its work."""
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()
