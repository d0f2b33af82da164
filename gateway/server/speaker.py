"""The speaking side of a session: backend -> seams -> encoder -> the client, with word
timings, progress and the books of what was heard.

A :class:`Speaker` belongs to one connection. Its :meth:`Speaker.run` loop (the connection's
speaker task) takes work from the session in order; the connection cancels that task for a
barge-in and then calls :meth:`Speaker.cut`. Everything it sends goes through the connection's
``send``; frames that were encoded but not yet sent when a cancel landed are sent first by the
next send of frames, so the timeline never has a hole.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from gateway.audio.framing import AudioOut, Frame
from gateway.audio.resample import ResampledChunks
from gateway.backends.base import AudioChunk, Backend, BackendError, SynthesisRequest, WordTiming
from gateway.backends.threads import ComputeClock, ModelPool
from gateway.core.alignment import estimate_spans, spoken_words
from gateway.core.cost import FREE, CostMeter, billable_chars, combined_snapshot
from gateway.core.metrics import SessionMetrics
from gateway.core.pacing import (
    ModelShare,
    SynthesisTimeModel,
    call_budget_chars,
    first_segment_chars,
    part_end,
    word_gap_end,
)
from gateway.core.playback import PlaybackModel
from gateway.core.protocol import (
    Audio,
    AudioFormat,
    BackendSwitched,
    Cancelled,
    Done,
    Error,
    ErrorCode,
    Flushed,
    Progress,
    SegmentEnd,
    SegmentStart,
    ServerMessage,
    Words,
)
from gateway.core.seams import SeamConfig, SeamShaper, Shaped
from gateway.core.segmenter import Boundary, Segment, SegmenterConfig
from gateway.core.session import EndMark, FlushMark, Session, SpeakSegment

if TYPE_CHECKING:
    from gateway.server.app import Gateway

__all__ = ["Speaker", "StreamSettings", "session_segmenter", "session_speaker"]

# Until a session has spoken a segment, estimated words assume about 14 characters a second.
_DEFAULT_SECONDS_PER_CHAR: Final = 0.07
# A listener that has run dry is due this much later than its audio ran out: on an overloaded
# model the sessions still playing go first (earliest deadline first alone would serve the late
# ones and make every session late), yet none waits longer than that.
_DRY_GRACE_S: Final = 2.0
# Frames encoded per call of the encoder threads (a cancel waits for at most these): few
# while the listener's buffer is short, more once it holds a second.
_FRAMES_PER_ENCODE: Final = 5
_LARGE_ENCODE: Final = 25
_BUFFERED_FOR_LARGE_S: Final = 1.0
# A segment is split into backend calls (adaptive chunking) only into parts this long or more.
_MIN_PART: Final = 8
# Audio a session held back by pacing sends in one go once it may (see Speaker._pace).
_PACE_BATCH_S: Final = 0.02
_UNLIMITED: Final = 1 << 30

Send = Callable[[ServerMessage], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """What ``start`` settled: the backend and the audio parameters of this session."""

    backend: Backend
    voice: str
    lang: str
    speed: float
    format: AudioFormat
    bitrate: int
    frame_ms: int
    instructions: str = ""  # a speaking style, for backends that take one


class Speaker:
    """Turns a session's work into messages (one per session; not shared between tasks)."""

    def __init__(
        self,
        *,
        session: Session,
        stream: StreamSettings,
        audio: AudioOut,
        seams: SeamConfig,
        metrics: SessionMetrics,
        send: Send,
        progress_interval_s: float,
        log: logging.LoggerAdapter[logging.Logger],
        pace_ahead_s: float = 8.0,
        backend_timeout_s: float = 30.0,
        fallback_for: Callable[[Backend], Backend | None] = lambda _: None,
        timing: SynthesisTimeModel | None = None,
        latency_target_s: float = 0.4,
        max_merged_chars: int = 300,
        cost_meter: Callable[[Backend], CostMeter] = lambda _: CostMeter(FREE),
        encoders: ModelPool | None = None,
        share_for: Callable[[Backend], ModelShare | None] = lambda _: None,
    ) -> None:
        self._session = session
        self._stream = stream
        self._audio = audio
        self._seams = seams
        self._shaper = SeamShaper(seams)
        self._metrics = metrics
        self._send = send
        self._log = log
        self.playback = PlaybackModel(seams.sample_rate)
        self._progress_interval = progress_interval_s
        self._progress_at = 0.0
        self._unsent: deque[Frame] = deque()
        self._seconds_per_char = _DEFAULT_SECONDS_PER_CHAR
        # Timeline position of the shaper's output sample 0; it moves when silence that is not
        # the shaper's (flush padding, a cut) joins the timeline.
        self._origin = audio.cursor
        self.finishing = False  # the end is being sent: nothing is left to cancel
        self.draining = False  # shutting down: stop at the next segment boundary
        self.busy = False  # speaking a segment
        self._pace_limit = round(pace_ahead_s * seams.sample_rate)
        self._backend_timeout = backend_timeout_s
        self._fallback_for = fallback_for
        self._timing = timing  # None: no adaptive chunking
        self._latency_target_s = latency_target_s
        self._max_merged_chars = max_merged_chars
        self._cost_meter = cost_meter
        self._costs: dict[str, CostMeter] = {}  # by backend name (a fallback has its own)
        self._encoders = encoders  # None: encode on the event loop
        self._share_for = share_for  # the sessions sharing a backend's model (None: not sized)

    @property
    def stream(self) -> StreamSettings:
        """The session's backend and voice settings (after a fallback, the fallback's)."""
        return self._stream

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
            work = self._session.next_work(merge_chars=self._merge_budget())
            if work is None:
                self.playback.idle()
                await work_ready()
                continue
            match work:
                case SpeakSegment():
                    self.busy = True
                    share = self._share_for(self._stream.backend)
                    if share is not None:
                        share.join(self, self._competing_buffered_s)
                    try:
                        await self._speak(work)
                    finally:
                        self.busy = False
                        if share is not None:
                            share.leave(self)
                case FlushMark():
                    await self.push_out()
                    await self._send(Flushed(work.id, self._audio.sent_end))
                    self._session.flush_answered(work)
                case EndMark():
                    await self._finish()
                    return True

    async def cut(self, request_id: int | str | None, position: int | None) -> None:
        """After the run task was cancelled: end the audio, answer the flushes it drops,
        report what was heard and what was not spoken."""
        now = time.monotonic()
        heard_at = self.playback.played(now) if position is None else position
        outcome = self._session.cancel(heard_at)
        await self._send_frames(self._audio.cut(self._seams.samples(self._seams.fade_ms)))
        self._shaper = SeamShaper(self._seams)
        self._origin = self._audio.cursor
        self.playback.stopped()
        for flush_id in outcome.dropped_flushes:
            await self._send(Flushed(flush_id, self._audio.sent_end, cancelled=True))
        heard = outcome.heard
        await self._send(
            Cancelled(
                request_id,
                self._audio.sent_end,
                outcome.unspoken_start,
                outcome.unspoken_end,
                outcome.unspoken_text,
                position=heard_at,
                cut=heard.cut,
                heard_start=heard.heard_start,
                heard_text=heard.heard_text,
                unheard_text=heard.unheard_text,
            )
        )
        self._log.info(
            "cancelled at sample %d: heard up to character %d, %d characters unspoken",
            heard_at,
            heard.cut,
            outcome.unspoken_end - outcome.unspoken_start,
        )

    async def cancel_while_finishing(
        self, request_id: int | str | None, position: int | None
    ) -> None:
        """A cancel after the last audio: nothing to drop, everything was spoken."""
        received = self._session.received
        heard_at = self._audio.sent_end if position is None else position
        heard = self._session.heard(heard_at)
        await self._send(
            Cancelled(
                request_id, self._audio.sent_end, received, received, "",
                position=heard_at, cut=heard.cut, heard_start=heard.heard_start,
                heard_text=heard.heard_text, unheard_text=heard.unheard_text,
            )
        )  # fmt: skip

    # -- one segment ---------------------------------------------------------------------------

    async def _speak(self, work: SpeakSegment) -> None:
        segment = work.segment
        if segment.blank:
            self._session.segment_finished(work, spoken=True)
            return
        await self._send(
            SegmentStart(
                segment=work.index,
                text=segment.text,
                char_start=segment.start,
                char_end=segment.end,
                sample_start=self._timeline(self._shaper.output_samples),
                boundary=segment.boundary.value,
                released_by=work.released_by.value,
                received_chars=work.received_chars,
            )
        )
        await self._progress("synthesis_started", work.index, force=True)
        words = _SegmentWords(work, self._stream.backend.native_word_timing)
        synthesis = await self._synthesize(words)
        ok = synthesis.error is None
        if synthesis.error is not None:
            failed = self._stream.backend.name
            if self._switch_to_fallback(work.index, str(synthesis.error)) is not None:
                await self._send(self._switched)
                if not words.audio_sent:  # nothing was heard yet: the fallback says it all
                    failed = self._stream.backend.name
                    words = _SegmentWords(work, self._stream.backend.native_word_timing)
                    synthesis = await self._synthesize(words)
                    ok = synthesis.error is None
            if not ok:
                await self._send(
                    Error(
                        ErrorCode.BACKEND_ERROR,
                        f"{failed}: {synthesis.error}",
                        char_start=segment.start,
                        char_end=segment.end,
                    )
                )
        last = self._shaper.end_piece(segment.boundary, last=True)
        await self._play(words, last)
        if words.refit and last.speech_end is not None:
            # The estimate was sent before the whole audio was known; now it is fitted to it
            # (this words message replaces the first, word by word).
            fitted = words.estimated(words.start, self._timeline(last.speech_end))
            await self._send_words(words.segment.index, True, fitted)
        end = self._timeline(self._shaper.output_samples)
        self._metrics.segment_synthesized(synthesis.seconds, synthesis.samples, ok=ok)
        if ok:
            self._session.mark_heard(end, segment.end)
            self._learn_rate(words, synthesis.samples)
            if self._timing is not None:
                self._timing.observe(len(segment.text), synthesis.model_seconds)
        await self._send(SegmentEnd(work.index, end, round(synthesis.seconds * 1000, 1)))
        self._session.segment_finished(work, spoken=ok)
        await self._progress("segment_done", work.index, force=True)

    async def _synthesize(self, words: _SegmentWords) -> _TimedStream:
        """Run the backend over the segment, playing its audio as it comes; the returned
        stream says how long it took and whether it failed."""
        segment = words.segment.segment
        backend = self._stream.backend
        # The one place audio is resampled: the backend's native rate -> the stream rate.
        chunks = ResampledChunks(self._parts(backend, segment), backend.sample_rate,
                                 self._seams.sample_rate)  # fmt: skip
        synthesis = _TimedStream(chunks, self._backend_timeout)
        piece_end: Boundary | None = None
        with ComputeClock() as clock:  # the model's own time, apart from waits for a turn
            try:
                async with contextlib.aclosing(synthesis):
                    async for chunk in synthesis:
                        if piece_end is not None:
                            words.pieces += 1
                            await self._play(words, self._shaper.end_piece(piece_end, last=False))
                        shaped = self._shaper.push(chunk.pcm, chunk.words)
                        await self._play(words, shaped, whole_piece=chunk.piece_end is not None)
                        piece_end = chunk.piece_end
            except BackendError as error:
                synthesis.error = error
                # What the failed backend said crossfades into whatever comes next.
                await self._play(words, self._shaper.end_piece(Boundary.WORD, last=False))
            finally:
                synthesis.model_s = clock.seconds if clock.runs else None
                self._count_cost(backend, segment.text, synthesis)
        return synthesis

    async def _parts(self, backend: Backend, segment: Segment) -> AsyncIterator[AudioChunk]:
        """The segment's audio from one backend call, or from several when the whole would not
        be ready before the listener runs dry (adaptive chunking): each call takes what fits
        the audio buffered by then. Word offsets are made relative to the segment's text."""
        offset = 0
        while offset < len(segment.text):
            rest = segment.text[offset:]
            # A backend that streams within a segment starts early whatever its length.
            budget = None if backend.streams_within_segment else self._part_budget()
            end = len(rest) if budget is None else part_end(rest, budget, min_chars=_MIN_PART)
            if budget is not None and end > budget:
                end = self._rescue_end(rest, end)
            request = SynthesisRequest(rest[:end], self._stream.voice, self._stream.lang,
                                       self._stream.speed, self._deadline(segment),
                                       instructions=self._stream.instructions)  # fmt: skip
            last: AudioChunk | None = None
            called = time.monotonic()
            buffered_s = self._buffered_s(called)
            chunks = backend.synthesize(request)
            try:
                async for chunk in chunks:
                    last = _shifted(chunk, offset)
                    yield last
            finally:
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await close()
            self._log.debug("call: %d of %d chars (budget %s), %.2f s buffered, took %.2f s",
                            end, len(rest), budget, buffered_s,
                            time.monotonic() - called)  # fmt: skip
            offset += end
            if offset < len(segment.text) and last is not None and last.piece_end is None:
                yield AudioChunk(np.zeros(0, dtype=np.float32), piece_end=Boundary.WORD)

    def _part_budget(self) -> int | None:
        """The most characters one backend call may take (None: no limit): what is ready
        in time (:meth:`_call_s`), and never less than a first segment."""
        if self._timing is None:
            return None
        fits = call_budget_chars(self._timing, self._call_s(), highest=_UNLIMITED)
        return max(fits, self._first_part_chars(self._timing))

    def _first_part_chars(self, timing: SynthesisTimeModel) -> int:
        """The characters one call can synthesize within the latency target (a first
        segment's length): the shortest part worth a call of its own."""
        return first_segment_chars(timing, self._latency_target_s,
                                   lowest=_MIN_PART, highest=_UNLIMITED)  # fmt: skip

    def _rescue_end(self, text: str, end: int) -> int:
        """Where a call that found no clause mark within its budget ends: at ``end`` (the first
        clause mark beyond it), unless this playing listener would run dry (with the latency
        target to spare) before that much could be ready even if it started now; then at the
        last word gap that is ready in time (a seam in the middle of a sentence rather than
        silence), if both sides are at least a first segment long (shorter pieces cost more
        than they save, and sound choppy)."""
        if self._timing is None or not self.playback.playing:
            return end
        slack_s = self._buffered_s(time.monotonic()) - self._latency_target_s
        if self._timing.seconds(end) <= slack_s:
            return end
        in_time = call_budget_chars(self._timing, slack_s, highest=end)
        return word_gap_end(text, in_time, min_chars=self._first_part_chars(self._timing)) or end

    def _merge_budget(self) -> int:
        """How much queued text the next call may take (adaptive chunking), 0: none."""
        if self._timing is None:
            return 0
        return call_budget_chars(self._timing, self._call_s(), highest=self._max_merged_chars)

    def _call_s(self) -> float:
        """How long the next backend call may take: done before this listener's buffered audio
        runs out with the latency target to spare, and no longer than its fair share of a
        model other sessions are waiting on (:func:`~gateway.core.pacing.fair_call_s`)."""
        buffered_s = self._buffered_s(time.monotonic())
        call_s = buffered_s - self._latency_target_s
        share = self._share_for(self._stream.backend)
        if share is not None and len(share) > 1:
            call_s = min(call_s, share.call_s(buffered_s, self._latency_target_s, member=self))
        return call_s

    def _competing_buffered_s(self) -> float:
        """This listener's buffered audio, for the other sessions sharing the model. Before
        playback has started, twice the latency target: its first call goes first, and right
        after it the listener holds little more than that."""
        if not self.playback.playing:
            return 2 * self._latency_target_s
        return self._buffered_s(time.monotonic())

    def _deadline(self, segment: Segment) -> float:
        """When this session's listener runs out of audio. A new turn's first segment is due
        within the latency target (its listener is waiting for the first sound), and so is the
        next one after a pause for text; a listener that ran dry while the session had work
        goes after the ones still playing (:data:`_DRY_GRACE_S`)."""
        now = time.monotonic()
        if segment.first_in_turn:
            return now + self._first_audio_due_s()
        due = now + self._buffered_s(now)
        if self.playback.playing and due <= now:
            if self.playback.pausing:  # it waited for text: as urgent as a first segment
                return now + self._first_audio_due_s()
            return due + _DRY_GRACE_S
        return due

    def _first_audio_due_s(self) -> float:
        """How soon a new turn's first segment is due: at once without adaptive chunking, else
        within the latency target (listeners with less audio than that left go first)."""
        return 0.0 if self._timing is None else self._latency_target_s

    def _count_cost(self, backend: Backend, text: str, synthesis: _TimedStream) -> None:
        """Bill a segment's characters once audio came back for it (a provider bills the
        request), and its audio and the time spent waiting on the backend in any case."""
        meter = self._costs.get(backend.name)
        if meter is None:
            meter = self._costs[backend.name] = self._cost_meter(backend)
        meter.add_segment(
            chars=billable_chars(text) if synthesis.samples else 0,
            audio_s=synthesis.samples / self._seams.sample_rate,
            compute_s=synthesis.model_seconds,
        )

    def _switch_to_fallback(self, segment: int, reason: str) -> Backend | None:
        """Move the session to its backend's fallback, if it has one."""
        current = self._stream.backend
        fallback = self._fallback_for(current)
        if fallback is None:
            return None
        lang = (
            self._stream.lang
            if self._stream.lang in fallback.languages
            else (fallback.default_lang)
        )
        self._stream = dataclasses.replace(
            self._stream, backend=fallback, voice=fallback.default_voice, lang=lang
        )
        self._switched = BackendSwitched(segment, current.name, fallback.name,
                                         fallback.default_voice, lang, reason)  # fmt: skip
        self._log.warning("switched from %s to %s: %s", current.name, fallback.name, reason)
        return fallback

    async def _play(
        self, words: _SegmentWords, shaped: Shaped, *, whole_piece: bool = False
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
                end = start + round(self._seconds_per_char * self._seams.sample_rate * words.weight)
            await self._send_words(words.segment.index, True, words.estimated(start, end))
        if len(shaped.pcm) and not words.audio_sent:
            words.audio_sent = True
            step = self._audio.frame_samples
            await self._emit(shaped.pcm[:step])
            await self._progress("first_audio", words.segment.index, force=True)
            await self._emit(shaped.pcm[step:])
        else:
            await self._emit(shaped.pcm)

    async def _send_words(self, segment: int, estimated: bool, words: list[dict[str, Any]]) -> None:
        if words:  # newer timings of these words replace older ones in the books of the heard
            self._session.forget_heard_from(words[0]["char_start"])
        for word in words:
            self._session.mark_heard(word["sample_end"], word["char_end"])
        await self._send(Words(segment, estimated, words))

    def _learn_rate(self, words: _SegmentWords, samples: int) -> None:
        if words.weight and samples:
            measured = samples / self._seams.sample_rate / words.weight
            self._seconds_per_char = 0.7 * self._seconds_per_char + 0.3 * measured

    def _buffered_s(self, now: float) -> float:
        """Seconds of audio the listener holds unplayed at ``now`` (the playback estimate)."""
        return self.playback.buffered(now) / self._seams.sample_rate

    def _timeline(self, shaper_position: int) -> int:
        """The timeline position of a position on the shaper's output."""
        return self._origin + shaper_position

    # -- flush and end -------------------------------------------------------------------------

    async def push_out(self) -> None:
        """Send every sample written so far (the encoder's tail padded with silence)."""
        await self._emit(self._shaper.finish().pcm)
        await self._send_frames(self._audio.drain())
        self._origin = self._audio.cursor - self._shaper.output_samples

    async def _finish(self) -> None:
        self.finishing = True
        await self.push_out()
        session = self._session
        metrics = self._metrics.summary(
            now=time.monotonic(),
            timeline_samples=self._audio.sent_end,
            chars={
                "chars_received": session.received,
                "chars_spoken": session.chars_spoken,
                "chars_unspoken": session.chars_unspoken,
            },
        )
        metrics["underruns"] = self.playback.underruns
        metrics.update(self.cost())
        heard = session.heard_everything()
        await self._send(Done(metrics, heard.cut, heard.heard_start, heard.heard_text))
        self._log.info("done: %s", metrics)

    # -- audio and progress ----------------------------------------------------------------------

    async def _emit(self, pcm: NDArray[np.float32]) -> None:
        """Encode and send audio a few frames at a time; more at once while the listener has
        plenty buffered (fewer hand-overs to the encoder threads)."""
        start = 0
        while start < len(pcm):
            buffered = self._buffered_s(time.monotonic())
            frames = _FRAMES_PER_ENCODE if buffered < _BUFFERED_FOR_LARGE_S else _LARGE_ENCODE
            end = start + self._audio.frame_samples * frames
            await self._encode(pcm[start:end])
            await self._send_frames(())
            start = end

    async def _encode(self, pcm: NDArray[np.float32]) -> None:
        """Queue the frames ``pcm`` completes, encoded in the gateway's encoder threads (earliest
        deadline first: the session with the least audio buffered goes first).

        Once encoding has begun its frames are queued even if the task is cancelled meanwhile
        (the pool waits for the thread), so the timeline never has a hole.
        """
        if self._encoders is None:
            self._unsent.extend(self._audio.write(pcm))
            return
        now = time.monotonic()
        deadline = now + self._buffered_s(now)
        await self._encoders.run(
            lambda: self._unsent.extend(self._audio.write(pcm)), deadline=deadline
        )

    async def _send_frames(self, frames: Iterable[Frame]) -> None:
        """Send frames in order. Frames made but not sent stay queued for the next call, so the
        timeline never has a hole: a cancel sends them before its cut."""
        self._unsent.extend(frames)
        while self._unsent:
            frame = self._unsent[0]
            await self._pace()
            await self._send(Audio(frame.seq, frame.sample_start, frame.data))
            self._unsent.popleft()  # no await since the write: a cancel cannot land in between
            now = time.monotonic()
            self._metrics.frame_sent(len(frame.data), now)
            self.playback.sent(frame.sample_start + self._audio.frame_samples, now)
            await self._progress("tick", None)

    async def _pace(self) -> None:
        """Wait while the client holds more than ``max_buffer_ahead_s`` of unplayed audio, so
        a session never runs far ahead of its listener (and synthesis waits with it).

        Once held back, it waits until a few frames fit, which then go out together: one wake-up
        per few frames instead of one per frame, for a client with seconds of audio in hand."""
        ahead = self.playback.buffered(time.monotonic()) - self._pace_limit
        if ahead > 0:
            await asyncio.sleep(ahead / self._seams.sample_rate + _PACE_BATCH_S)

    async def _progress(self, event: str, segment: int | None, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._progress_at < self._progress_interval:
            return
        self._progress_at = now
        rate = self._seams.sample_rate / 1000
        metrics = self._metrics
        rtf = (
            metrics.synthesis_s * self._seams.sample_rate / metrics.speech_samples
            if (metrics.speech_samples)
            else None
        )
        await self._send(
            Progress(
                event=event,
                segment=segment,
                chars_received=self._session.received,
                chars_spoken=self._session.chars_spoken,
                audio_sent_ms=round(self._audio.sent_end / rate, 1),
                audio_buffered_ms=round(self.playback.buffered(now) / rate, 1),
                underruns=self.playback.underruns,
                time_to_first_audio_ms=_rounded(metrics.time_to_first_audio_ms),
                real_time_factor=None if rtf is None else round(rtf, 4),
                **self.cost(),
            )
        )


class _SegmentWords:
    """The words of one segment on their way to the client."""

    def __init__(self, work: SpeakSegment, native: bool) -> None:
        self.segment = work
        self._native = native
        self._words = spoken_words(work.segment.text)
        self.weight = sum(len(word.spoken or word.speak) for word in self._words)
        self.sent = False
        self.audio_sent = False
        self.predicted = False  # estimated before the audio's length was known
        self.pieces = 1  # separately synthesized pieces so far
        self.start = 0  # timeline position where the estimate starts

    @property
    def refit(self) -> bool:
        """Whether the estimate sent must be fitted again to the whole segment's audio."""
        return not self._native and (self.predicted or self.pieces > 1)

    def native(
        self, placed: list[WordTiming], timeline: Callable[[int], int]
    ) -> list[dict[str, Any]]:
        """Backend timings (segment text, shaper output) -> session offsets and timeline."""
        self.sent = True
        return [
            _word(
                self.segment.segment.start,
                self.segment.segment.text,
                word.char_start,
                word.char_end,
                timeline(word.sample_start),
                timeline(word.sample_end),
                word.spoken,
            )
            for word in placed
        ]

    def estimated(self, start: int, end: int) -> list[dict[str, Any]]:
        """All the segment's words spread over ``[start, end)`` by their spoken length."""
        self.sent = True
        weights = [len(word.spoken or word.speak) for word in self._words]
        return [
            _word(self.segment.segment.start, self.segment.segment.text, word.char_start,
                  word.char_end, span.sample_start, span.sample_end, word.spoken)
            for word, span in zip(self._words, estimate_spans(weights, start, end), strict=True)
        ]  # fmt: skip


def _word(
    offset: int,
    text: str,
    char_start: int,
    char_end: int,
    sample_start: int,
    sample_end: int,
    spoken: str | None,
) -> dict[str, Any]:
    word: dict[str, Any] = {
        "text": text[char_start:char_end],
        "char_start": offset + char_start,
        "char_end": offset + char_end,
        "sample_start": sample_start,
        "sample_end": sample_end,
    }
    if spoken is not None:
        word["spoken"] = spoken
    return word


_MAX_LEVEL: Final = 4.0  # float PCM far beyond full scale is garbage, not loud speech


def _checked(chunk: AudioChunk) -> AudioChunk:
    """The chunk as finite mono float32 in [-1, 1]; BackendError if it is not audio at all."""
    pcm = chunk.pcm
    if not isinstance(pcm, np.ndarray) or pcm.ndim != 1 or pcm.dtype.kind != "f":
        shape = getattr(pcm, "shape", None)
        raise BackendError(f"malformed audio: expected mono float samples, got {shape}")
    if not np.isfinite(pcm).all():
        raise BackendError("malformed audio: samples that are not finite numbers")
    peak = float(np.abs(pcm).max()) if len(pcm) else 0.0
    if peak > _MAX_LEVEL:
        raise BackendError(f"malformed audio: samples up to {peak:.3g}, far beyond full scale")
    if peak > 1.0 or pcm.dtype != np.float32:
        pcm = np.clip(pcm, -1.0, 1.0).astype(np.float32)
        return dataclasses.replace(chunk, pcm=pcm)
    return chunk


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class _TimedStream:
    """A backend's chunk stream, guarded: it times the waits, fails a backend that stays
    silent for ``timeout_s``, and refuses audio that is not finite mono float PCM."""

    def __init__(self, chunks: AsyncIterator[AudioChunk], timeout_s: float) -> None:
        self._chunks = chunks
        self._timeout = timeout_s
        self.seconds = 0.0  # waiting for the backend, its turn on a shared model included
        self.model_s: float | None = None  # the model's own time, when the backend's pool tells
        self.samples = 0
        self.error: BackendError | None = None

    @property
    def model_seconds(self) -> float:
        """What the call would have taken on an idle model (its waits when that is unknown)."""
        return self.seconds if self.model_s is None else self.model_s

    def __aiter__(self) -> _TimedStream:
        return self

    async def __anext__(self) -> AudioChunk:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                chunk = await anext(self._chunks)
        except TimeoutError:
            raise BackendError(f"no audio for {self._timeout:g} s") from None
        finally:
            self.seconds += time.perf_counter() - started
        chunk = _checked(chunk)
        self.samples += len(chunk.pcm)
        return chunk

    async def aclose(self) -> None:
        """Close the backend's generator, so a cancelled segment stops its work."""
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


def session_segmenter(
    gateway: Gateway, backend: Backend, *, short_first_segment: bool | None = None
) -> SegmenterConfig:
    """The segmenting rules of a new session on ``backend``: the configured ones, with the first
    segment sized to the latency target when adaptive chunking is on (longer when other
    sessions are playing on the same model)."""
    config = gateway.config
    segmenter = config.segmenter
    if short_first_segment is not None:
        segmenter = dataclasses.replace(segmenter, short_first_segment=short_first_segment)
    if config.session.adaptive_chunking:
        first = first_segment_chars(
            gateway.timing_model(backend),
            config.session.latency_target_ms / 1000,
            lowest=segmenter.first_segment_min_chars + 1,
            highest=segmenter.first_segment_max_chars,
        )
        # Sessions already playing on this model make the new one wait a call each before its
        # second segment: its first one must last that much longer (and it waits for its turn
        # anyway, so the longer first call costs little of its time to first audio).
        competing = gateway.model_share(backend).competing()
        first = min(segmenter.first_segment_max_chars, first * (1 + competing))
        segmenter = dataclasses.replace(segmenter, first_segment_max_chars=first)
    return segmenter


def session_speaker(
    gateway: Gateway,
    *,
    session: Session,
    stream: StreamSettings,
    audio: AudioOut,
    metrics: SessionMetrics,
    send: Send,
    log: logging.LoggerAdapter[logging.Logger],
    pace_ahead_s: float | None = None,
) -> Speaker:
    """A :class:`Speaker` with the gateway's settings (``pace_ahead_s`` defaults to
    ``limits.max_buffer_ahead_s``)."""
    config = gateway.config
    adaptive = config.session.adaptive_chunking
    rate = config.audio.sample_rate  # backends' audio is resampled to it
    return Speaker(
        session=session,
        stream=stream,
        audio=audio,
        seams=SeamConfig(sample_rate=rate, **dataclasses.asdict(config.seams)),
        metrics=metrics,
        send=send,
        progress_interval_s=config.session.progress_interval_ms / 1000,
        log=log,
        pace_ahead_s=config.limits.max_buffer_ahead_s if pace_ahead_s is None else pace_ahead_s,
        backend_timeout_s=config.limits.backend_timeout_s,
        fallback_for=gateway.fallback_for,
        timing=gateway.timing_model(stream.backend) if adaptive else None,
        latency_target_s=config.session.latency_target_ms / 1000,
        max_merged_chars=config.session.max_merged_chars,
        cost_meter=gateway.cost_meter,
        encoders=gateway.encoders,
        share_for=gateway.model_share if adaptive else lambda _: None,
    )


def _shifted(chunk: AudioChunk, offset: int) -> AudioChunk:
    """``chunk`` of a call on the segment's text from ``offset`` on, with its words' character
    offsets made relative to the whole segment's text."""
    if not offset or not chunk.words:
        return chunk
    words = tuple(
        dataclasses.replace(w, char_start=w.char_start + offset, char_end=w.char_end + offset)
        for w in chunk.words
    )
    return dataclasses.replace(chunk, words=words)
