"""One ElevenLabs context: a gateway session whose frames become ElevenLabs audio messages.

A :class:`Context` is the single stream of ``stream-input`` or one ``context_id`` of
``multi-stream-input``. It is opened the one way every edge opens a session
(:mod:`gateway.server.opening`): a :class:`~gateway.core.session.Session` takes the client's
text (segmenting, flushes, the end), and a :class:`~gateway.speech.speaker.Speaker` speaks it
(scheduling, seams, word timing, cost, fallback), at the rate of the client's
``output_format``. The context is the speaker's sink: its frames are queued on the socket's
:class:`~gateway.server.elevenlabs_outbox.SocketOutbox`, which asks the context to
:meth:`~Context.render` them as a message: the frames' audio in the output format (raw PCM,
G.711, or the next bytes of one MP3 or Ogg Opus stream), base64, and the characters whose sound
starts in it (:class:`~gateway.core.elevenlabs_alignment.CharTimeline`).

The context owns its speaker task: :meth:`Context.abort` cancels and awaits it (the client closed
the context mid-speech), :meth:`Context.end` lets it finish (the client's input ended).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from gateway.audio.codecs import OpusOptions, Pcm16Encoder
from gateway.audio.containers import ContainerWriter, container_writer
from gateway.audio.formats import OutputFormat
from gateway.audio.framing import Frame
from gateway.core.elevenlabs_alignment import AlignmentTimes, CharTimeline
from gateway.core.elevenlabs_wire import (
    SCHEDULE_RANGE,
    ClientMessage,
    audio_message,
    error_message,
    final_message,
)
from gateway.core.metrics import SessionMetrics
from gateway.core.protocol import (
    BackendSwitched,
    Done,
    Error,
    SegmentStart,
    ServerMessage,
    Words,
)
from gateway.core.session import Session
from gateway.server.elevenlabs_outbox import Closed, SocketOutbox
from gateway.server.gateway import Gateway
from gateway.server.opening import open_speaker
from gateway.server.tasks import cancel_and_wait
from gateway.speech.speaker import Speaker
from gateway.speech.synthesis import StreamSettings

__all__ = ["Context", "ContextOptions", "ContextState"]

# MP3 and AAC bit rate when the format names none (ElevenLabs' default MP3 is 128 kbit/s).
_DEFAULT_BITRATE: Final = 128_000


class ContextState(enum.Enum):
    OPEN = "open"  # taking text
    DRAINING = "draining"  # closed by the client after its input ended: speaking the rest
    FINISHED = "finished"  # isFinal queued (spoken to the end, or aborted)


@dataclass(frozen=True, slots=True)
class ContextOptions:
    """What every context of a socket shares: the stream (backend, voice, rate), the output
    format, and how text is committed."""

    stream: StreamSettings
    output: OutputFormat
    auto_mode: bool
    times: AlignmentTimes
    max_message_ms: int
    ssml: bool = False  # the text is read as SSML (enable_ssml_parsing)


class Context:
    """One context of a socket (one task: its speaker's)."""

    def __init__(
        self,
        gateway: Gateway,
        options: ContextOptions,
        *,
        context_id: str | None,
        outbox: SocketOutbox,
        on_finished: Callable[[Context], Awaitable[None]],
        speed: float | None,
        schedule: tuple[int, ...] | None,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.id = context_id
        self._gateway = gateway
        self._outbox = outbox
        self._on_finished = on_finished
        self._log = log
        self._auto_mode = options.auto_mode
        self._schedule = schedule or ()
        self._scheduled = 0  # index of the next chunk_length_schedule threshold
        config = gateway.config
        stream = (
            options.stream if speed is None else dataclasses.replace(options.stream, speed=speed)
        )
        rate = stream.sample_rate
        self._timeline = CharTimeline(rate, options.times)
        self._writer = _writer(options.output, gateway)
        encoder = Pcm16Encoder(sample_rate=rate, frame_ms=stream.frame_ms)
        self.max_frames = max(1, options.max_message_ms // stream.frame_ms)
        limits = config.limits
        self._session = Session(config.segmenter, max_pending_chars=limits.max_pending_chars,
                                max_pending_flushes=limits.max_pending_flushes,
                                max_heard_chars=limits.max_heard_chars)  # fmt: skip
        self._metrics = SessionMetrics(sample_rate=rate, started_at=time.monotonic())
        self._speaker: Speaker = open_speaker(gateway, self._session, stream, encoder=encoder,
                                              sink=self, send=self._on_message,
                                              metrics=self._metrics, log=log,
                                              ssml=options.ssml)  # fmt: skip
        self._work_ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._bare_flush = False  # the last text-bearing message was a flush without text
        self._audio_end = 0  # timeline position where the frames queued so far end
        self.state = ContextState.OPEN
        self.done = asyncio.Event()  # isFinal queued
        self.aborted = False
        self.last_message_at = time.monotonic()

    # -- the client's side -------------------------------------------------------------------------

    def start(self) -> None:
        """Start speaking (the speaker task; :meth:`abort` or the end stops it)."""
        self._task = asyncio.create_task(self._speak(), name=f"xi-context-{self.id}")

    def accept(self, message: ClientMessage) -> None:
        """Text, flush and trigger flags of one message for this context (in that order);
        raises ProtocolError if the session refuses it (a limit)."""
        self.last_message_at = time.monotonic()
        released = self._session.segments_released
        text = message.text or ""
        if self._auto_mode and message.has_text and not text[-1].isspace():
            text += " "  # each message is a whole phrase: never glued to the next one
        if text and (message.has_text or self._session.received):  # the opening " " adds nothing
            self._session.accept_text(text)
            self._timeline.add_text(text)
            self._restart_idle_timer()
        if message.has_text:
            self._bare_flush = False
        if message.flush or (self._auto_mode and message.has_text):
            self._session.request_flush(None)
            self._bare_flush = self._bare_flush or not message.has_text
        elif self._whole_words() and (self._trigger_due(message) or self._schedule_due()):
            self._session.request_flush(None)
        self._woken(released)

    def _woken(self, released_before: int) -> None:
        """Note when segments were released (time to first audio counts from there) and wake
        the speaker."""
        if self._session.segments_released > released_before:
            self._metrics.segment_released(time.monotonic())
        self._work_ready.set()

    def close(self) -> bool:
        """The client closed the context. True: it drains (its input ended with a bare flush,
        so everything is spoken and then ``isFinal``); False: the caller must :meth:`abort`
        it (the client interrupted it)."""
        if self.state is not ContextState.OPEN or not self._bare_flush:
            return False
        self.end()
        return True

    def end(self) -> None:
        """No more text: speak everything, then ``isFinal`` (the end of ``stream-input``)."""
        if self.state is ContextState.OPEN:
            self.state = ContextState.DRAINING
            self._cancel_idle_timer()
            released = self._session.segments_released
            self._session.request_end()
            self._woken(released)

    async def abort(self) -> None:
        """Stop speaking now, drop the text and audio not sent, queue ``isFinal``."""
        if self.state is ContextState.FINISHED:
            return
        self.aborted = True
        self._cancel_idle_timer()
        await cancel_and_wait(self._task)
        self._session.close()
        await self._finished()

    async def wind_down(self, within_s: float) -> None:
        """The gateway is stopping: finish the segment being spoken (for at most
        ``within_s``), report the text that will not be spoken, queue ``isFinal``."""
        task = self._task
        if task is not None and not task.done():
            self._speaker.draining = True
            self._work_ready.set()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(within_s):
                    await asyncio.shield(task)
        if self.state is not ContextState.FINISHED and self._session.pending_chars:
            message = (f"the gateway is shutting down: {self._session.pending_chars} characters "
                       "of this context will not be spoken")  # fmt: skip
            await self._outbox.message(error_message("shutting_down", message, self.id))
        await self.abort()

    async def stop(self) -> None:
        """The socket is gone: stop the speaker task (nothing more is sent)."""
        self.aborted = True
        self._cancel_idle_timer()
        await cancel_and_wait(self._task)
        self._writer.close()

    @property
    def speaking(self) -> bool:
        """Whether its speaker task is still running."""
        return self._task is not None and not self._task.done()

    @property
    def idle(self) -> bool:
        """Nothing to speak and nothing being spoken (inactivity may close it)."""
        return not (self._session.has_work or self._session.has_pending_text or self._speaker.busy)

    @property
    def pending_chars(self) -> int:
        """Characters accepted and not spoken yet."""
        return self._session.pending_chars

    # -- the speaker's side ----------------------------------------------------------------------

    async def _speak(self) -> None:
        try:
            await self._speaker.run(self._wait_for_work)
        except Closed:
            pass
        except Exception:
            self._log.exception("context %s failed", self.id)
            message = error_message("internal_error", "internal error", self.id)
            try:
                await self._outbox.message(message)
                await self._finished()
            except Closed:
                pass

    async def _wait_for_work(self) -> None:
        self._work_ready.clear()
        await self._work_ready.wait()

    async def _on_message(self, message: ServerMessage) -> None:
        """What the speaker says besides audio: timing for the alignment, failures, the end."""
        match message:
            case SegmentStart():
                self._timeline.segment(message.char_start, message.char_end, message.sample_start)
            case Words():
                self._timeline.words(message.words)
            case Error():
                start, end = message.char_start or 0, message.char_end or 0
                self._timeline.skip(start, end)
                self._log.warning("context %s: %s", self.id, message.message)
                await self._outbox.message(error_message(message.code, message.message, self.id))
            case BackendSwitched():
                self._log.warning("context %s switched to %s", self.id, message.backend)
            case Done():
                await self._finished()

    async def _finished(self) -> None:
        if self.state is not ContextState.FINISHED:
            self.state = ContextState.FINISHED
            await self._outbox.finish(self)
            self.done.set()
            await self._on_finished(self)

    # AudioSink: the speaker's frames

    async def frame(self, frame: Frame) -> None:
        self._audio_end = frame.sample_start + len(frame.data) // 2
        await self._outbox.audio(self, frame)

    async def boundary(self) -> None:
        """Frames are sent as soon as the writer is free: nothing is held here."""

    # AudioSource: the writer's questions

    def render(self, frames: list[Frame]) -> dict[str, Any] | None:
        audio = self._writer.write(b"".join(frame.data for frame in frames)) + self._writer.flush()
        if not audio:
            return None  # the encoder is still filling its first frame
        end = frames[-1].sample_start + len(frames[-1].data) // 2
        alignment, normalized = self._timeline.take(end)
        encoded = base64.b64encode(audio).decode("ascii")
        return audio_message(encoded, alignment, normalized, self.id)

    def finish(self) -> list[dict[str, Any]]:
        messages = []
        if not self.aborted:
            tail = self._writer.finish()
            alignment, normalized = self._timeline.take(self._audio_end, everything=True)
            if tail or alignment is not None:
                encoded = base64.b64encode(tail).decode("ascii")
                messages.append(audio_message(encoded, alignment, normalized, self.id))
        self._writer.close()
        messages.append(final_message(self.id))
        return messages

    # -- helpers -----------------------------------------------------------------------------

    def _whole_words(self) -> bool:
        """Whether the buffered text ends between words (a flush never cuts a word)."""
        return self._session.buffered_text[-1:].isspace()

    def _trigger_due(self, message: ClientMessage) -> bool:
        """``try_trigger_generation`` speaks the buffered text if there is enough of it to be
        worth a synthesis of its own (the least a schedule may ask for)."""
        minimum = SCHEDULE_RANGE[0]
        return message.try_trigger_generation and len(self._session.buffered_text) >= minimum

    def _schedule_due(self) -> bool:
        """Whether the buffered text reached the next ``chunk_length_schedule`` threshold."""
        if not self._schedule:
            return False
        threshold = self._schedule[min(self._scheduled, len(self._schedule) - 1)]
        if len(self._session.buffered_text) < threshold:
            return False
        self._scheduled += 1
        return True

    def _restart_idle_timer(self) -> None:
        """Text that waits for more is spoken after ``session.max_buffer_delay_ms`` anyway."""
        self._cancel_idle_timer()
        delay_ms = self._gateway.config.session.max_buffer_delay_ms
        if delay_ms and self._session.has_pending_text:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(delay_ms / 1000, self._release_idle)

    def _release_idle(self) -> None:
        self._idle_timer = None
        released = self._session.segments_released
        self._session.release_idle()
        self._woken(released)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None


def _writer(output: OutputFormat, gateway: Gateway) -> ContainerWriter:
    audio = gateway.config.audio
    rate = output.sample_rate
    opus = OpusOptions(
        sample_rate=rate,
        frame_ms=audio.frame_ms,
        bitrate=output.bitrate or audio.bitrate,
        vbr=audio.vbr.value,
        application=audio.application.value,
        complexity=audio.complexity,
    )
    return container_writer(
        output.container, sample_rate=rate, bitrate=output.bitrate or _DEFAULT_BITRATE, opus=opus
    )
