"""The speaking pipeline's decisions, without sockets or threads: call sizes and deadlines (the
planner), pacing and hand-over (the delivery), the guard and the fallback around a backend, and
the speaker's words, refits and message order. Time is a hand-driven clock."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import TypeVar

import numpy as np
import pytest

from gateway.audio.codecs import Pcm16Encoder
from gateway.audio.framing import AudioOut, Frame
from gateway.backends.base import AudioChunk, BackendError, EngineCounters, SynthesisRequest, Voice
from gateway.core.chunks import WordTiming
from gateway.core.cost import FREE
from gateway.core.metrics import SessionMetrics
from gateway.core.pacing import ModelShare, SynthesisTimeModel
from gateway.core.playback import PlaybackModel
from gateway.core.protocol import (
    Audio,
    AudioFormat,
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
from gateway.core.seams import SeamConfig
from gateway.core.segmenter import Boundary, Segment, SegmenterConfig
from gateway.core.session import Session
from gateway.speech.chunking import DRY_GRACE_S, CallPlanner, first_segment_rules
from gateway.speech.delivery import Delivery, MessageSink
from gateway.speech.shared import SpeechServices, SpeechSettings
from gateway.speech.speaker import Speaker
from gateway.speech.synthesis import (
    BackendSynthesizer,
    CallReport,
    Fallback,
    Guarded,
    StreamSettings,
    Switch,
)
from tests.conftest import timeout

RATE = 24000
M = TypeVar("M")
LATENCY_S = 0.4


class HandClock:
    """Time moves only when someone sleeps (or the test moves it)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.t = now
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


class Script:
    """A backend whose calls are scripted: each call's audio lasts 60 ms per character, in one
    piece; ``fail_on`` makes a call whose text holds it raise (after ``fail_after`` chunks)."""

    kind = "script"
    model: str | None = None
    languages: tuple[str, ...] = ("en-us",)
    default_voice = "v"
    default_lang = "en-us"
    max_input_chars: int | None = None
    lanes = 1

    def __init__(
        self,
        name: str = "script",
        *,
        streams: bool = False,
        native: bool = False,
        rate: int = RATE,
        fail_on: str = "",
        fail_after: int = 0,
        clock: HandClock | None = None,
    ) -> None:
        self.name = name
        self.streams_within_segment = streams
        self.native_word_timing = native
        self.sample_rate = rate
        self.fail_on = fail_on
        self.fail_after = fail_after
        self.requests: list[SynthesisRequest] = []
        self.counters = EngineCounters()
        self.clock = clock  # moved by each call's compute time: 0.1 s + 1 ms a character

    @property
    def ready(self) -> bool:
        return True

    async def load(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def voices(self) -> list[Voice]:
        return [Voice("v", "v", "en-us")]

    def resolve_voice(self, name: str) -> str:
        return name

    async def synthesize(self, request: SynthesisRequest) -> AsyncIterator[AudioChunk]:
        self.requests.append(request)
        if self.clock is not None:
            self.clock.t += 0.1 + 0.001 * len(request.text)
        samples = round(0.06 * self.sample_rate) * len(request.text.strip())
        tone = (0.3 * np.sin(np.arange(samples) / 3)).astype(np.float32)
        halves = np.array_split(tone, 2)
        for index, half in enumerate(halves):
            if self.fail_on and self.fail_on in request.text and index >= self.fail_after:
                raise BackendError("scripted failure")
            last = index == len(halves) - 1
            words = (
                (WordTiming(0, len(request.text), 0, samples),)
                if self.native_word_timing and last
                else ()
            )
            yield AudioChunk(half, piece_end=Boundary.SENTENCE if last else None, words=words)


def stream_on(backend: Script) -> StreamSettings:
    return StreamSettings(backend, "v", "en-us", 1.0, AudioFormat.PCM16, 32000, 20)


def settings(*, adaptive: bool = True) -> SpeechSettings:
    return SpeechSettings(
        sample_rate=RATE,
        seams=SeamConfig(sample_rate=RATE),
        segmenter=SegmenterConfig(short_first_segment=False),
        progress_interval_s=1.0,
        pace_ahead_s=8.0,
        backend_timeout_s=5.0,
        adaptive_chunking=adaptive,
        latency_target_s=LATENCY_S,
        max_merged_chars=300,
    )


# -- the planner: call sizes and deadlines ---------------------------------------------------------


def planner(
    clock: HandClock,
    playback: PlaybackModel,
    timing: SynthesisTimeModel | None,
    share: ModelShare | None = None,
) -> CallPlanner:
    return CallPlanner(playback=playback, clock=clock, latency_target_s=LATENCY_S,
                       max_merged_chars=300, timing=lambda: timing,
                       share=lambda: share)  # fmt: skip


def listening(clock: HandClock, buffered_s: float) -> PlaybackModel:
    """A listener that started playing now and holds ``buffered_s`` of audio."""
    playback = PlaybackModel(RATE)
    playback.sent(round(buffered_s * RATE), clock.now())
    return playback


LONG = (
    "The river ran wide and slow past the village, where the mill turned all day, "
    "and the children watched the boats drift by; nobody hurried there at all."
)


def test_a_call_takes_what_is_ready_before_the_listener_runs_dry() -> None:
    clock = HandClock()
    timing = SynthesisTimeModel(fixed_s=0.1, per_char_s=0.01)
    # 1.5 s buffered, 0.4 s to spare: a call of 1.1 s, 100 characters; the last clause mark
    # within them ends it.
    plan = planner(clock, listening(clock, 1.5), timing)
    end = plan.call_end(LONG, streams=False, max_chars=None)
    assert (
        LONG[:end]
        == "The river ran wide and slow past the village, where the mill turned all day, "
    )
    # A backend that streams within a call takes it all, but never over its limit.
    assert plan.call_end(LONG, streams=True, max_chars=None) == len(LONG)
    limited = plan.call_end(LONG, streams=True, max_chars=60)
    assert LONG[:limited] == "The river ran wide and slow past the village,"


def test_without_adaptive_chunking_a_segment_is_one_call_due_at_once() -> None:
    clock = HandClock()
    plan = planner(clock, listening(clock, 0.5), None)
    assert plan.call_end(LONG, streams=False, max_chars=None) == len(LONG)
    assert plan.merge_budget(streams=False) == 0
    first = Segment(0, 10, "Hello you.", Boundary.SENTENCE, first_in_turn=True)
    assert plan.deadline(first) == clock.now()


def test_a_listener_about_to_run_dry_gets_a_word_gap_cut() -> None:
    clock = HandClock()
    timing = SynthesisTimeModel(fixed_s=0.1, per_char_s=0.01)
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    # No clause mark at all: a calm listener waits for the whole text ...
    calm = planner(clock, listening(clock, 5.0), timing)
    assert calm.call_end(text, streams=False, max_chars=None) == len(text)
    # ... one with 0.9 s left gets a cut at a word gap ready in time (0.5 s: 40 characters).
    hurried = planner(clock, listening(clock, 0.9), timing)
    end = hurried.call_end(text, streams=False, max_chars=None)
    assert text[:end] == "one two three four five six seven eight "


def test_a_word_gap_cut_leaves_whole_phrases_on_both_sides() -> None:
    """On a slow model the first-segment length falls to a few characters, yet a word-gap cut
    still leaves several words on each side: a call of two or three words is read as an
    utterance of its own ("eggs, and fresh | bread on your way home." was heard as "I eggs on
    fresh. Bread on your way home.")."""
    clock = HandClock()
    slow = SynthesisTimeModel(fixed_s=0.39, per_char_s=0.02)  # within the target: 8 chars
    rest = " eggs, and fresh bread on your way home."
    # 1.1 s buffered, 0.7 s to spare: 15 characters are ready in time, " eggs, and " of them.
    # Two words are no call of their own: the listener waits for the sentence.
    hurried = planner(clock, listening(clock, 1.1), slow)
    assert hurried.call_end(rest, streams=False, max_chars=None) == len(rest)
    # 1.3 s buffered: 25 characters, four words each side.
    less_hurried = planner(clock, listening(clock, 1.3), slow)
    end = less_hurried.call_end(rest, streams=False, max_chars=None)
    assert rest[:end] == " eggs, and fresh bread "


def test_a_shared_model_makes_calls_shorter() -> None:
    clock = HandClock()
    timing = SynthesisTimeModel(fixed_s=0.1, per_char_s=0.01)
    playback = listening(clock, 3.0)
    share = ModelShare(lanes=1)
    alone = planner(clock, playback, timing, share)
    share.join(alone, lambda: 3.0)
    budget_alone = alone.merge_budget(streams=False)
    share.join(object(), lambda: 1.0)  # another listener with 1 s left waits on the model
    assert alone.merge_budget(streams=False) < budget_alone
    assert (
        alone.merge_budget(streams=False) == 50
    )  # (1.0 - 0.4) s for one call of 0.1 s + 0.01 s a char


def test_deadlines_follow_the_listener() -> None:
    clock = HandClock()
    timing = SynthesisTimeModel()
    later = Segment(10, 20, " And more.", Boundary.SENTENCE, first_in_turn=False)
    first = dataclasses.replace(later, first_in_turn=True)
    playback = listening(clock, 2.0)
    plan = planner(clock, playback, timing)
    assert plan.deadline(first) == pytest.approx(clock.now() + LATENCY_S)
    assert plan.deadline(later) == pytest.approx(clock.now() + 2.0)
    clock.t += 3.0  # it ran dry while the session had work: after those still playing
    assert plan.deadline(later) == pytest.approx(clock.now() + DRY_GRACE_S)
    playback.idle()  # it waited for text: as urgent as a first segment
    assert plan.deadline(later) == pytest.approx(clock.now() + LATENCY_S)


def test_first_segments_fit_the_latency_target_and_grow_with_competition() -> None:
    rules = SegmenterConfig()
    timing = SynthesisTimeModel(fixed_s=0.2, per_char_s=0.01)
    alone = first_segment_rules(rules, timing=timing, latency_target_s=0.4, competing=0)
    busy = first_segment_rules(rules, timing=timing, latency_target_s=0.4, competing=2)
    assert alone.first_segment_max_chars == 20
    assert busy.first_segment_max_chars == 60
    assert first_segment_rules(rules, timing=None, latency_target_s=0.4, competing=2) == rules


# -- the delivery: pacing ------------------------------------------------------------------------


class Frames:
    """A sink that keeps what it is handed."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.boundaries = 0

    async def frame(self, frame: Frame) -> None:
        self.frames.append(frame)

    async def boundary(self) -> None:
        self.boundaries += 1


async def _nothing() -> None:
    pass


def delivery(clock: HandClock, sink: Frames, pace_ahead_s: float | None) -> Delivery:
    return Delivery(audio=AudioOut(Pcm16Encoder(sample_rate=RATE, frame_ms=20)), sink=sink,
                    clock=clock, metrics=SessionMetrics(RATE, clock.now()), sample_rate=RATE,
                    pace_ahead_s=pace_ahead_s, encoders=None,
                    after_frame=_nothing)  # fmt: skip


async def test_paced_audio_waits_for_the_listener_in_small_bursts() -> None:
    clock = HandClock()
    sink = Frames()
    out = delivery(clock, sink, pace_ahead_s=1.0)
    await out.emit(np.zeros(3 * RATE, np.float32))  # 3 s of audio at once
    assert len(sink.frames) == 150
    assert clock.slept  # the last 2 s waited for the listener
    # One wake-up per one or two frames, never a wait per frame nor a long stall.
    assert all(0.02 - 1e-6 <= wait <= 0.04 + 1e-6 for wait in clock.slept)
    assert len(clock.slept) <= 100 / 2 + 1
    assert out.buffered_s() <= 1.0 + 0.02 + 1e-9  # at most a frame above the limit
    assert clock.t - 1000.0 == pytest.approx(2.0, abs=0.05)


async def test_unpaced_audio_goes_as_fast_as_the_sink_takes_it() -> None:
    clock = HandClock()
    sink = Frames()
    out = delivery(clock, sink, pace_ahead_s=None)
    await out.emit(np.zeros(3 * RATE, np.float32))
    assert len(sink.frames) == 150
    assert not clock.slept


# -- guard and fallback --------------------------------------------------------------------------


async def _drain(chunks: AsyncIterator[AudioChunk]) -> int:
    return sum([len(chunk.pcm) async for chunk in chunks])


async def test_the_guard_reports_every_call_and_refuses_garbage() -> None:
    clock = HandClock()
    reports: list[CallReport] = []
    backend = Script()
    guarded = Guarded(BackendSynthesizer(stream_on(backend), RATE), timeout_s=5.0, clock=clock,
                      report=reports.append)  # fmt: skip
    assert await _drain(guarded.call("Hello.", None)) == round(0.06 * RATE) * 6
    assert [(r.text, r.samples, r.complete, r.error) for r in reports] == [
        ("Hello.", round(0.06 * RATE) * 6, True, None)
    ]
    backend.fail_on = "Bad"
    with pytest.raises(BackendError, match="scripted failure"):
        await _drain(guarded.call("Bad words.", None))
    assert reports[-1].error is not None
    assert not reports[-1].complete


async def test_a_resampled_backend_keeps_its_duration() -> None:
    backend = Script(rate=22050)
    synth = BackendSynthesizer(stream_on(backend), RATE)
    samples = await _drain(synth.call("Hello.", None))
    assert abs(samples - round(0.06 * RATE) * 6) <= 2


async def test_fallback_repeats_a_call_that_sent_nothing_and_can_recover() -> None:
    clock = HandClock()
    switches: list[Switch] = []

    async def on_switch(switch: Switch) -> None:
        switches.append(switch)

    primary, spare = Script("primary", fail_on="Bad"), Script("spare")
    fallback = Fallback(
        BackendSynthesizer(stream_on(primary), RATE),
        lambda: BackendSynthesizer(stream_on(spare), RATE),
        on_switch=on_switch,
        clock=clock,
        recover_after_s=30.0,
    )
    assert await _drain(fallback.call("Bad start.", None)) > 0
    assert [(s.previous.backend.name, s.current.backend.name) for s in switches] == [
        ("primary", "spare")
    ]
    assert fallback.stream.backend is spare
    clock.t += 10.0
    await _drain(fallback.call("Still on the spare.", None))
    assert len(switches) == 1
    clock.t += 25.0  # 35 s after the switch: the next call tries the primary again
    await _drain(fallback.call("Back home.", None))
    assert [(s.previous.backend.name, s.current.backend.name) for s in switches][-1] == (
        "spare",
        "primary",
    )
    assert primary.requests[-1].text == "Back home."


async def test_fallback_gives_up_a_call_that_was_partly_heard() -> None:
    clock = HandClock()
    switches: list[Switch] = []

    async def on_switch(switch: Switch) -> None:
        switches.append(switch)

    primary, spare = Script("primary", fail_on="Bad", fail_after=1), Script("spare")
    fallback = Fallback(BackendSynthesizer(stream_on(primary), RATE),
                        lambda: BackendSynthesizer(stream_on(spare), RATE),
                        on_switch=on_switch, clock=clock)  # fmt: skip
    with pytest.raises(BackendError):
        await _drain(fallback.call("Bad luck.", None))
    assert len(switches) == 1
    assert not spare.requests  # the next call goes there
    await _drain(fallback.call("Next.", None))
    assert [r.text for r in spare.requests] == ["Next."]


# -- the speaker -----------------------------------------------------------------------------------


class Run:
    """A speaker over a scripted backend, with everything it sends recorded."""

    def __init__(
        self,
        backend: Script,
        *,
        adaptive: bool = False,
        spare: Script | None = None,
        clock: HandClock | None = None,
    ):
        self.clock = HandClock() if clock is None else clock
        self.sent: list[ServerMessage] = []
        self.busy_at_send: list[bool] = []  # the speaker's `busy` as each message went out
        self.sink = Frames()
        self.services = SpeechServices(
            settings(adaptive=adaptive), price=lambda _: FREE,
            fallback_for=lambda b: spare if b is backend else None,
        )  # fmt: skip
        self.session = Session(SegmenterConfig(short_first_segment=False), max_pending_chars=5000,
                               max_pending_flushes=4)  # fmt: skip
        self.session.begin(self.services.segmenter_rules(backend))
        self.speaker = Speaker(
            services=self.services, session=self.session, stream=stream_on(backend),
            audio=AudioOut(Pcm16Encoder(sample_rate=RATE, frame_ms=20)),
            sink=MessageSink(self._send), send=self._send,
            metrics=SessionMetrics(RATE, self.clock.now()),
            log=logging.LoggerAdapter(logging.getLogger("test"), {}), clock=self.clock,
        )  # fmt: skip

    async def _send(self, message: ServerMessage) -> None:
        self.sent.append(message)
        self.busy_at_send.append(self.speaker.busy)

    async def speak(self, text: str) -> None:
        self.session.accept_text(text)
        self.session.request_end()
        assert await self.speaker.run(_never)

    def of(self, kind: type[M]) -> list[M]:
        return [m for m in self.sent if isinstance(m, kind)]


async def _never() -> None:
    raise AssertionError("the speaker waited for work")


async def test_messages_of_a_segment_come_in_the_documented_order() -> None:
    run = Run(Script())
    await run.speak("Hello there.")
    kinds = [type(m).__name__ for m in run.sent if not isinstance(m, Audio)]
    assert kinds[0] == "SegmentStart"
    assert kinds.index("Words") < kinds.index("SegmentEnd") < kinds.index("Done")
    first_audio = next(i for i, m in enumerate(run.sent) if isinstance(m, Audio))
    assert first_audio > next(i for i, m in enumerate(run.sent) if isinstance(m, Words))
    done = run.of(Done)[0]
    assert done.metrics["chars_spoken"] == len("Hello there.")


async def test_estimated_words_are_refit_to_the_segment_audio() -> None:
    run = Run(Script(streams=True))  # the audio arrives in two halves: words are predicted
    await run.speak("Hello there, friends.")
    words = run.of(Words)
    assert [w.estimated for w in words] == [True, True]  # the prediction, then the refit
    end = next(iter(run.of(SegmentEnd)))
    refit = words[-1].words
    predicted = words[0].words[-1]["sample_end"]
    assert refit[-1]["sample_end"] <= end.sample_end
    assert refit[-1]["sample_end"] != predicted  # fitted to the audio, not the prediction


async def test_native_words_are_not_refit() -> None:
    run = Run(Script(native=True))
    await run.speak("Hello there.")
    words = run.of(Words)
    # Estimated until the backend's own timings came, and never estimated again after them.
    assert [w.estimated for w in words] == [True, False]


async def test_a_failing_segment_reports_its_range_and_the_session_goes_on() -> None:
    run = Run(Script(fail_on="Bad"))
    await run.speak("Good one. Bad one. Good again.")
    errors = run.of(Error)
    assert len(errors) == 1
    assert errors[0].message.startswith("script: ")
    starts = run.of(SegmentStart)
    bad = next(s for s in starts if "Bad" in s.text)
    assert (errors[0].char_start, errors[0].char_end) == (bad.char_start, bad.char_end)
    done = run.of(Done)[0]
    assert done.metrics["chars_unspoken"] == len(bad.text)


async def test_a_switch_is_announced_before_the_fallbacks_audio() -> None:
    run = Run(Script(fail_on="Bad"), spare=Script("spare"))
    await run.speak("Bad start here.")
    switched = next(i for i, m in enumerate(run.sent) if isinstance(m, BackendSwitched))
    first_audio = next(i for i, m in enumerate(run.sent) if isinstance(m, Audio))
    assert switched < first_audio
    assert not run.of(Error)
    assert run.speaker.stream.backend.name == "spare"


async def test_adaptive_calls_are_due_within_the_latency_target_and_timed() -> None:
    backend = Script()
    run = Run(backend, adaptive=True)
    backend.clock = run.clock
    model = run.services.timing_model(backend)
    model.fixed_s, model.per_char_s = 0.2, 0.01
    started = run.clock.now()
    await run.speak("A short first sentence. Then a second one follows it, a little later.")
    assert backend.requests[0].deadline == pytest.approx(started + LATENCY_S)
    # The calls taught the timing model that this backend is faster than it assumed.
    assert model.seconds(30) < 0.2 + 0.01 * 30


async def test_a_providers_limit_cuts_a_segment_into_calls_within_it() -> None:
    backend = Script(streams=True)
    backend.max_input_chars = 40
    run = Run(backend)
    text = "Alpha beta gamma delta, epsilon zeta eta theta, iota kappa lambda mu nu."
    await run.speak(text)
    calls = [request.text for request in backend.requests]
    assert calls == [
        "Alpha beta gamma delta,",
        " epsilon zeta eta theta,",
        " iota kappa lambda mu nu.",
    ]


# -- barge-in and what progress reports -----------------------------------------------------------


class StandingClock(HandClock):
    """Time stands still: a session held back by pacing waits for ever, as one whose listener
    has its whole buffer in hand."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.holding.set()
        await asyncio.Event().wait()


LONG_TALK = " ".join(["A long sentence that fills the listener's buffer with audio."] * 4)


async def test_a_cancel_drops_what_pacing_held_back_at_once() -> None:
    clock = StandingClock()
    run = Run(Script(), clock=clock)
    run.session.accept_text(LONG_TALK)
    run.session.request_flush("f1")
    task = asyncio.create_task(run.speaker.run(_never))
    await asyncio.wait_for(clock.holding.wait(), timeout(10))  # 8 s buffered: it waits
    held = len(run.sent)
    last = run.of(Audio)[-1]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    async with asyncio.timeout(timeout(10)):  # no wait for the listener any more
        await run.speaker.cut("c1", None)
    after = run.sent[held:]
    # Not a frame more: the dropped flush and the answer, at once.
    assert [type(m) for m in after] == [Flushed, Cancelled]
    assert isinstance(after[1], Cancelled)
    assert after[1].sample_end == last.sample_start + 480  # the end of what was handed over
    # The timeline goes on right there, with a fresh encoder.
    run.session.accept_text(" Next.")
    run.session.request_end()
    assert await run.speaker.run(_never)
    following = [m for m in run.sent[held:] if isinstance(m, Audio)]
    assert following[0].seq == last.seq + 1
    assert following[0].sample_start == after[1].sample_end


async def test_the_speaker_is_busy_until_done_is_sent() -> None:
    """The gateway's idle timeout closes a session whose speaker is not busy. A long text's
    last audio goes out at the listener's pace, and after it the end's encoder tail, the flush
    answers and `done`: the speaker is busy through all of them (CI saw a session of 84 s of
    audio closed for idleness just before its `done`)."""
    run = Run(Script())
    run.session.accept_text("Hello there. ")
    run.session.request_flush("f1")
    run.session.accept_text("And more.")
    run.session.request_end()
    assert await run.speaker.run(_never)
    assert isinstance(run.sent[-1], Done)
    assert run.of(Flushed)
    sent = zip(run.sent, run.busy_at_send, strict=True)
    assert [type(message).__name__ for message, busy in sent if not busy] == []
    assert run.speaker.busy, "busy until the session closes: done is the last word"


async def test_progress_counts_only_the_audio_handed_over() -> None:
    run = Run(Script())
    await run.speak(LONG_TALK)
    sent_ms = 0.0
    reports = 0
    for message in run.sent:
        if isinstance(message, Audio):
            sent_ms = (message.sample_start + 480) / RATE * 1000
        elif isinstance(message, Progress):
            reports += 1
            assert message.audio_sent_ms == pytest.approx(sent_ms)
    assert reports > 10  # ticks while the audio was paced


async def test_a_prediction_of_words_is_not_what_was_heard() -> None:
    # docs/protocol.md section 9: while a segment's words exist only as a prediction, none of
    # them counts as heard. The scripted backend delivers a segment in two halves, so its words
    # are predicted at the first; the listener's buffer fills within it and pacing holds.
    clock = StandingClock()
    run = Run(Script(), clock=clock)
    text = "Words predicted before the audio is all there, " * 6 + "end."
    run.session.accept_text(text)
    run.session.request_flush(None)
    task = asyncio.create_task(run.speaker.run(_never))
    await asyncio.wait_for(clock.holding.wait(), timeout(10))
    assert run.of(Words)[0].estimated
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    async with asyncio.timeout(timeout(10)):
        await run.speaker.cut("c1", 10**9)  # played far past every predicted word
    (cancelled,) = run.of(Cancelled)
    assert (cancelled.cut, cancelled.heard_text) == (0, "")
