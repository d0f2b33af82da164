"""The speaking side of a session: its work, in order, through backend calls, seams and words to
timed frames, with progress and the books of what was heard.

A :class:`Speaker` belongs to one session. Its :meth:`Speaker.run` loop (the session's speaker
task) takes work from the :class:`~gateway.core.session.Session` in order; the edge cancels
that task for a barge-in and then calls :meth:`Speaker.cut`. Messages go through ``send``,
frames through an :class:`~gateway.speech.delivery.AudioSink`; the time comes from a
:class:`~gateway.speech.clock.Clock`. Call sizes and deadlines are
:class:`~gateway.speech.chunking.CallPlanner`'s decisions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Final

import numpy as np

from gateway.audio.framing import AudioOut
from gateway.core.chunks import AudioChunk
from gateway.core.cost import CostMeter, billable_chars, combined_snapshot
from gateway.core.errors import BackendError, ErrorCode, SpeechError
from gateway.core.metrics import SessionMetrics
from gateway.core.pacing import ModelShare
from gateway.core.protocol import (
    BackendSwitched,
    Cancelled,
    Done,
    Error,
    Flushed,
    Progress,
    SegmentEnd,
    SegmentStart,
    ServerMessage,
    Words,
)
from gateway.core.seams import SeamShaper, Shaped
from gateway.core.segmenter import Boundary, Segment
from gateway.core.session import EndMark, FlushMark, Session, SpeakSegment
from gateway.speech.chunking import CallPlanner, MarkedCalls, shifted
from gateway.speech.clock import SYSTEM_CLOCK, Clock
from gateway.speech.delivery import AudioSink, Delivery
from gateway.speech.shared import SpeechServices
from gateway.speech.synthesis import CallReport, StreamSettings, Switch
from gateway.speech.words import SegmentWords, WordEntry

__all__ = ["Send", "Speaker"]

Send = Callable[[ServerMessage], Awaitable[None]]

# Until a session has spoken a segment, estimated words assume about 14 characters a second.
_DEFAULT_SECONDS_PER_CHAR: Final = 0.07


class Speaker:
    """Turns a session's work into messages and frames (one per session; one task).

    ``paced``: audio waits for the listener (``limits.max_buffer_ahead_s``); a REST response is
    not paced. ``stop_on_error``: a segment that fails raises
    :class:`~gateway.core.errors.SpeechError` instead of sending an ``error`` and going on.
    """

    def __init__(
        self,
        *,
        services: SpeechServices,
        session: Session,
        stream: StreamSettings,
        audio: AudioOut,
        sink: AudioSink,
        send: Send,
        metrics: SessionMetrics,
        log: logging.LoggerAdapter[logging.Logger],
        clock: Clock = SYSTEM_CLOCK,
        paced: bool = True,
        stop_on_error: bool = False,
    ) -> None:
        settings = services.settings
        self._services = services
        self._settings = settings
        self._session = session
        self._send = send
        self._metrics = metrics
        self._log = log
        self._clock = clock
        self._stop_on_error = stop_on_error
        self._rate = stream.sample_rate  # of the timeline (a fallback keeps it)
        self._seams = settings.seams.at_rate(self._rate)
        self._delivery = Delivery(
            audio=audio, sink=sink, clock=clock, metrics=metrics, sample_rate=self._rate,
            pace_ahead_s=settings.pace_ahead_s if paced else None,
            encoders=services.encoders, after_frame=self._tick,
        )  # fmt: skip
        self.playback = self._delivery.playback
        self._synth = services.synthesizer(
            stream, clock=clock, report=self._on_call, on_switch=self._on_switch
        )
        adaptive = settings.adaptive_chunking
        self._planner = CallPlanner(
            playback=self.playback, clock=clock,
            latency_target_s=settings.latency_target_s, max_merged_chars=settings.max_merged_chars,
            timing=lambda: services.timing_model(self.stream.backend) if adaptive else None,
            share=lambda: services.model_share(self.stream.backend) if adaptive else None,
        )  # fmt: skip
        self._shaper = SeamShaper(self._seams)
        # Timeline position of the shaper's output sample 0; it moves when silence that is not
        # the shaper's (flush padding, a cut) joins the timeline.
        self._origin = audio.cursor
        self._seconds_per_char = _DEFAULT_SECONDS_PER_CHAR
        self._progress_at = -float("inf")
        self._underruns_seen = 0
        self._costs: dict[str, CostMeter] = {}  # by backend name (a fallback has its own)
        self._words: SegmentWords | None = None  # of the segment being spoken
        self._call_seconds, self._call_samples = 0.0, 0  # the segment's calls, so far
        self._failed_backend = ""  # the backend whose call failed last
        self._tail_pause_ms: float | None = None  # an SSML break ends the last piece
        self.finishing = False  # the end is being sent: nothing is left to cancel
        self.draining = False  # shutting down: stop at the next segment boundary
        self._working = False  # doing one piece of the session's work (see busy)

    @property
    def busy(self) -> bool:
        """Whether the session's work is under way: a segment being spoken, a flush's or the
        end's audio being sent, and from the end on for good (the idle timeout closes only a
        session whose speaker is not busy)."""
        return self._working or self.finishing

    @property
    def stream(self) -> StreamSettings:
        """The session's backend and voice settings (after a fallback, the fallback's)."""
        return self._synth.stream

    def cost(self) -> dict[str, Any]:
        """The cost so far: ``cost_usd`` (None if unknown), ``billed_chars``,
        ``billed_audio_s`` and ``compute_s`` (see :class:`~gateway.core.cost.CostMeter`)."""
        return combined_snapshot(self._costs.values())

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, work_ready: Callable[[], Awaitable[None]]) -> bool:
        """Do the session's work in order until the end; ``work_ready`` waits for more.

        Returns True once ``done`` has been sent. Safe to cancel at any await: a later
        :meth:`cut` (or run) takes over cleanly.
        """
        while True:
            if self.draining:
                return False
            streams = self.stream.backend.streams_within_segment
            work = self._session.next_work(merge_chars=self._planner.merge_budget(streams=streams))
            if work is None:
                self.playback.idle()
                await work_ready()
                continue
            self._working = True
            try:
                match work:
                    case SpeakSegment():
                        await self._speak_shared(work)
                    case FlushMark():
                        await self.push_out()
                        await self._send(Flushed(work.id, self._delivery.sent_end))
                        self._session.flush_answered(work)
                    case EndMark():
                        await self._finish()
                        return True
            finally:
                self._working = False

    async def cut(self, request_id: int | str | None, position: int | None) -> None:
        """After the run task was cancelled: end the audio, answer the flushes it drops,
        report what was heard and what was not spoken."""
        heard_at = self.playback.played(self._clock.now()) if position is None else position
        outcome = self._session.cancel(heard_at)
        self._delivery.cut()
        self._shaper = SeamShaper(self._seams)
        self._origin = self._delivery.cursor
        sent_end = self._delivery.sent_end
        for flush_id in outcome.dropped_flushes:
            await self._send(Flushed(flush_id, sent_end, cancelled=True))
        heard = outcome.heard
        await self._send(
            Cancelled(request_id, sent_end, outcome.unspoken_start, outcome.unspoken_end,
                      outcome.unspoken_text, position=heard_at, cut=heard.cut,
                      heard_start=heard.heard_start, heard_text=heard.heard_text,
                      unheard_text=heard.unheard_text)
        )  # fmt: skip
        self._log.info("cancelled at sample %d: heard up to character %d, %d characters unspoken",
                       heard_at, heard.cut,
                       outcome.unspoken_end - outcome.unspoken_start)  # fmt: skip

    async def cancel_while_finishing(
        self, request_id: int | str | None, position: int | None
    ) -> None:
        """A cancel after the last audio: nothing to drop, everything was spoken."""
        received, sent_end = self._session.received, self._delivery.sent_end
        heard_at = sent_end if position is None else position
        heard = self._session.heard(heard_at)
        await self._send(
            Cancelled(request_id, sent_end, received, received, "", position=heard_at,
                      cut=heard.cut, heard_start=heard.heard_start, heard_text=heard.heard_text,
                      unheard_text=heard.unheard_text)
        )  # fmt: skip

    # -- one segment ---------------------------------------------------------------------------

    async def _speak_shared(self, work: SpeakSegment) -> None:
        """Speak a segment as a member of its model's share (adaptive chunking)."""
        share = self._planner_share()
        share.join(self._planner, self._planner.competing_buffered_s)
        try:
            await self._speak(work)
        finally:
            share.leave(self._planner)

    def _planner_share(self) -> ModelShare:
        # Joined whether or not adaptive chunking sizes calls by it: it also counts the
        # sessions speaking on the model, for admission (SpeechServices.model_loads).
        return self._services.model_share(self.stream.backend)

    async def _speak(self, work: SpeakSegment) -> None:
        segment = work.segment
        if segment.blank or self._only_markup(segment):
            self._session.segment_finished(work, spoken=True)
            return
        await self._send(
            SegmentStart(segment=work.index, text=segment.text, char_start=segment.start,
                         char_end=segment.end,
                         sample_start=self._timeline(self._shaper.output_samples),
                         boundary=segment.boundary.value, released_by=work.released_by.value,
                         received_chars=work.received_chars)
        )  # fmt: skip
        await self._progress("synthesis_started", work.index, force=True)
        words = self._words = self._segment_words(work)
        self._call_seconds, self._call_samples = 0.0, 0
        error = await self._synthesize()
        words = self._words
        if error is not None:
            message = f"{self._failed_backend}: {error}"
            if self._stop_on_error:
                raise SpeechError(message)
            self._session.segment_failed(work)  # reported here: a cancel leaves it out
            await self._send(Error(ErrorCode.BACKEND_ERROR, message, char_start=segment.start,
                                   char_end=segment.end))  # fmt: skip
        last = self._shaper.end_piece(segment.boundary, last=True, pause_ms=self._tail_pause_ms)
        await self._play(words, last)
        if words.refit and last.speech_end is not None:
            # The estimate was sent before the whole audio was known; now it is fitted to it
            # (this words message replaces the first, word by word).
            fitted = words.estimated(words.start, self._timeline(last.speech_end))
            await self._send_words(work.index, True, fitted)
        end = self._timeline(self._shaper.output_samples)
        ok = error is None
        self._metrics.segment_synthesized(self._call_seconds, self._call_samples, ok=ok)
        if ok:
            self._session.mark_heard(end, segment.end)
            self._learn_rate(words, self._call_samples)
        await self._send(SegmentEnd(work.index, end, round(self._call_seconds * 1000, 1)))
        await self._delivery.boundary()
        self._session.segment_finished(work, spoken=ok)
        await self._progress("segment_done", work.index, force=True)

    async def _synthesize(self) -> BackendError | None:
        """Run the segment's calls, playing their audio as it comes; the error that ended
        them, if one did."""
        piece_end: Boundary | None = None
        self._tail_pause_ms = None
        try:
            # Closed explicitly, so a cancel stops the backend's work before it returns.
            async with contextlib.aclosing(self._calls()) as calls:
                async for chunk in calls:
                    if piece_end is not None:
                        self._current_words().pieces += 1
                        ended = self._shaper.end_piece(piece_end, last=False,
                                                       pause_ms=self._tail_pause_ms)  # fmt: skip
                        await self._play(self._current_words(), ended)
                    shaped = self._shaper.push(chunk.pcm, chunk.words)
                    await self._play(self._current_words(), shaped,
                                     whole_piece=chunk.piece_end is not None)  # fmt: skip
                    piece_end, self._tail_pause_ms = chunk.piece_end, chunk.pause_ms
        except BackendError as error:
            # What the failed backend said crossfades into whatever comes next.
            await self._play(self._current_words(),
                             self._shaper.end_piece(Boundary.WORD, last=False))  # fmt: skip
            return error
        return None

    def _only_markup(self, segment: Segment) -> bool:
        """An SSML segment of tags and whitespace alone (a last ``</speak>``): nothing to hear."""
        markup = self._session.markup(segment)
        return markup is not None and not markup.plain.strip() and not markup.breaks

    def _segment_words(self, work: SpeakSegment) -> SegmentWords:
        stream, markup = self.stream, self._session.markup(work.segment)
        return SegmentWords(work, stream.backend.native_word_timing, stream.lang, stream.rules,
                            markup)  # fmt: skip

    def _current_words(self) -> SegmentWords:
        assert self._words is not None
        return self._words

    async def _calls(self) -> AsyncGenerator[AudioChunk, None]:
        """The segment's audio from one backend call, or from several (adaptive chunking, a
        provider's limit, SSML breaks and rates), as the planner sizes them. Word offsets are
        made relative to the segment's text; a piece ends at every call's end, and an SSML
        break is a piece of silence."""
        words = self._current_words()
        segment, text, marked = words.segment.segment, words.text, MarkedCalls(words.markup)
        offset = 0
        while offset < len(text):
            if (pause := marked.pause_at(offset)) is not None:
                yield pause
            rest = text[offset:]
            backend = self.stream.backend
            end = marked.limit(
                offset,
                self._planner.call_end(
                    rest, streams=backend.streams_within_segment, max_chars=backend.max_input_chars
                ),
            )
            last: AudioChunk | None = None
            deadline, buffered_s = self._planner.deadline(segment), self._planner.buffered_s()
            call = self._synth.call(rest[:end], deadline, buffered_s, marked.options(offset, end))
            async with contextlib.aclosing(call) as chunks:
                async for chunk in chunks:
                    last = shifted(chunk, offset)
                    yield last
            offset += end
            if offset < len(text) and last is not None and last.piece_end is None:
                yield AudioChunk(np.zeros(0, dtype=np.float32), piece_end=Boundary.WORD)
        if (pause := marked.pause_at(len(text))) is not None:
            yield pause

    def _on_call(self, report: CallReport) -> None:
        """A backend call ended: its cost, the backend's timing, the segment's figures."""
        backend = report.backend
        meter = self._costs.get(backend.name)
        if meter is None:
            meter = self._costs[backend.name] = self._services.cost_meter(backend)
        # A provider bills a request once audio came back for it.
        meter.add_segment(chars=billable_chars(report.text) if report.samples else 0,
                          audio_s=report.samples / self._rate,
                          compute_s=report.model_seconds)  # fmt: skip
        self._call_seconds += report.seconds
        self._call_samples += report.samples
        if report.error is not None:
            self._failed_backend = backend.name
        elif report.complete and self._settings.adaptive_chunking:
            self._services.timing_model(backend).observe(len(report.text), report.model_seconds)

    async def _on_switch(self, switch: Switch) -> None:
        """The session moved to another backend: say so before its audio."""
        current = switch.current
        words = self._words
        index = words.segment.index if words is not None else 0
        await self._send(BackendSwitched(index, switch.previous.backend.name,
                                         current.backend.name, current.voice, current.lang,
                                         switch.reason))  # fmt: skip
        self._log.warning("switched from %s to %s: %s", switch.previous.backend.name,
                          current.backend.name, switch.reason)  # fmt: skip
        if words is not None and not words.audio_sent:  # the new backend says all of it
            self._words = self._segment_words(words.segment)

    async def _play(
        self, words: SegmentWords, shaped: Shaped, *, whole_piece: bool = False
    ) -> None:
        """Send the words a piece of audio holds, then the audio."""
        start = self._timeline(self._shaper.output_samples - len(shaped.pcm))
        if shaped.words:
            placed = words.native(shaped.words, self._timeline)
            await self._send_words(words.segment.index, False, placed)
        elif len(shaped.pcm) and not words.sent:
            words.start = start
            if whole_piece:  # the piece arrived whole: fit the words to it
                end = start + len(shaped.pcm)
            else:  # predict from the speaking rate; fitted once the segment has ended
                words.predicted = True
                end = start + round(self._seconds_per_char * self._rate * words.weight)
            estimate = words.estimated(start, end)  # a prediction is not heard until fitted
            await self._send_words(words.segment.index, True, estimate, heard=whole_piece)
        if len(shaped.pcm) and not words.audio_sent:
            words.audio_sent = True
            step = self._delivery.frame_samples
            await self._delivery.emit(shaped.pcm[:step])
            await self._progress("first_audio", words.segment.index, force=True)
            await self._delivery.boundary()
            await self._delivery.emit(shaped.pcm[step:])
        else:
            await self._delivery.emit(shaped.pcm)

    async def _send_words(
        self, segment: int, estimated: bool, words: list[WordEntry], *, heard: bool = True
    ) -> None:
        if words:  # newer timings of these words replace older ones in the books of the heard
            self._session.forget_heard_from(words[0]["char_start"])
        for word in words if heard else ():
            self._session.mark_heard(word["sample_end"], word["char_end"])
        await self._send(Words(segment, estimated, words))

    def _learn_rate(self, words: SegmentWords, samples: int) -> None:
        if words.weight and samples:
            measured = samples / self._rate / words.weight
            self._seconds_per_char = 0.7 * self._seconds_per_char + 0.3 * measured

    def _timeline(self, shaper_position: int) -> int:
        """The timeline position of a position on the shaper's output."""
        return self._origin + shaper_position

    # -- flush and end -------------------------------------------------------------------------

    async def push_out(self) -> None:
        """Send every sample written so far (the encoder's tail padded with silence)."""
        await self._delivery.emit(self._shaper.finish().pcm)
        await self._delivery.drain()
        await self._delivery.boundary()
        self._origin = self._delivery.cursor - self._shaper.output_samples

    async def _finish(self) -> None:
        self.finishing = True
        await self.push_out()
        session = self._session
        metrics = self._metrics.summary(
            now=self._clock.now(),
            timeline_samples=self._delivery.sent_end,
            chars={"chars_received": session.received, "chars_spoken": session.chars_spoken,
                   "chars_unspoken": session.chars_unspoken},
        )  # fmt: skip
        metrics["underruns"] = self.playback.underruns
        metrics.update(self.cost())
        heard = session.heard_everything()
        await self._send(Done(metrics, heard.cut, heard.heard_start, heard.heard_text))
        self._log.info("done: %s", metrics)

    # -- progress ------------------------------------------------------------------------------

    async def _tick(self) -> None:
        """After every frame: tell the gateway's load (did the listener run dry?); maybe tick."""
        underruns = self.playback.underruns
        self._services.load.frame(self, self._clock.now(), stalled=underruns > self._underruns_seen)
        self._underruns_seen = underruns
        await self._progress("tick", None)

    async def _progress(self, event: str, segment: int | None, *, force: bool = False) -> None:
        now = self._clock.now()
        if not force and now - self._progress_at < self._settings.progress_interval_s:
            return
        self._progress_at = now
        rate_ms = self._rate / 1000
        metrics = self._metrics
        rtf = (metrics.synthesis_s * self._rate / metrics.speech_samples
               if metrics.speech_samples else None)  # fmt: skip
        await self._send(
            Progress(event=event, segment=segment, chars_received=self._session.received,
                     chars_spoken=self._session.chars_spoken,
                     audio_sent_ms=round(self._delivery.sent_end / rate_ms, 1),
                     audio_buffered_ms=round(self.playback.buffered(now) / rate_ms, 1),
                     underruns=self.playback.underruns,
                     time_to_first_audio_ms=_rounded(metrics.time_to_first_audio_ms),
                     real_time_factor=None if rtf is None else round(rtf, 4),
                     saturated=self._services.saturated(), **self.cost())
        )  # fmt: skip


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
