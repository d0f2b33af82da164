"""Helpers for end-to-end tests: run a session, check the order and timeline of what came back."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from gateway.backends.base import AudioChunk, Backend, SynthesisRequest
from gateway.core.playback import PlaybackModel
from gateway.core.protocol import (
    Audio,
    Cancelled,
    Done,
    Error,
    Flushed,
    Ready,
    SegmentEnd,
    SegmentStart,
    ServerMessage,
)
from gateway.speech.chunking import CallPlanner
from gateway.speech.clock import SYSTEM_CLOCK
from tts_gateway_client.client import SpeechStream
from tts_gateway_client.output import AudioCollector

M = TypeVar("M")


@dataclass
class Transcript:
    """Everything a session received, in order, with arrival times."""

    ready: Ready
    messages: list[ServerMessage] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    def of(self, kind: type[M]) -> list[M]:
        return [m for m in self.messages if isinstance(m, kind)]

    @property
    def audio(self) -> list[Audio]:
        return [m for m in self.messages if isinstance(m, Audio)]

    @property
    def segments(self) -> list[SegmentStart]:
        return [m for m in self.messages if isinstance(m, SegmentStart)]

    @property
    def done(self) -> Done | None:
        return next((m for m in self.messages if isinstance(m, Done)), None)

    def pcm(self) -> NDArray[np.float32]:
        collector = AudioCollector(self.ready)
        for frame in self.audio:
            collector.add(frame, 0.0)
        return collector.pcm()

    def kinds(self) -> list[str]:
        return [m.TYPE for m in self.messages]


async def collect(
    stream: SpeechStream, *, until: type | None = None, deadline_s: float = 60
) -> Transcript:
    """Read messages until the socket closes (or one of type ``until`` arrives)."""
    transcript = Transcript(stream.ready)
    async with asyncio.timeout(deadline_s):
        async for message in stream:
            transcript.messages.append(message)
            transcript.arrivals.append(time.monotonic())
            if until is not None and isinstance(message, until):
                break
    return transcript


def check_timeline(transcript: Transcript) -> None:
    """Audio frames are numbered and placed without gaps or overlaps; segments are in order."""
    frame = transcript.ready.frame_samples
    audio = transcript.audio
    assert [a.seq for a in audio] == list(range(len(audio)))
    assert [a.sample_start for a in audio] == [i * frame for i in range(len(audio))]
    open_segment: SegmentStart | None = None
    previous_end = 0
    for message in transcript.messages:
        if isinstance(message, SegmentStart):
            assert open_segment is None, "segments do not nest"
            assert message.sample_start >= previous_end
            open_segment = message
        elif isinstance(message, SegmentEnd):
            assert open_segment is not None
            assert message.segment == open_segment.segment
            assert message.sample_end > open_segment.sample_start
            previous_end = message.sample_end
            open_segment = None
        elif isinstance(message, Flushed | Cancelled):
            # A cancel ends the segment being spoken without a segment_end.
            interrupted = isinstance(message, Cancelled) or message.cancelled
            assert open_segment is None or interrupted
            if isinstance(message, Cancelled):
                open_segment = None
            sent = len([m for m in transcript.messages[: transcript.messages.index(message)]
                        if isinstance(m, Audio)])  # fmt: skip
            assert message.sample_end == sent * frame, "acknowledged after its audio"


def check_segments_cover(segments: Iterable[SegmentStart], text: str) -> None:
    """Segment texts are the client's text, contiguous; only whitespace is left unsegmented."""
    position = 0
    for segment in segments:
        assert segment.char_start == position
        assert text[segment.char_start : segment.char_end] == segment.text
        position = segment.char_end
    assert not text[position:].strip()


def errors(transcript: Transcript) -> list[Error]:
    return [m for m in transcript.messages if isinstance(m, Error)]


async def spoken_in_calls(backend: Backend, request: SynthesisRequest) -> list[AudioChunk]:
    """The chunks of ``request``'s text as the speaking pipeline asks ``backend`` for them
    without adaptive chunking: in calls that never exceed the backend's ``max_input_chars``
    (the pipeline's own planner decides where each call ends)."""
    planner = CallPlanner(playback=PlaybackModel(24000), clock=SYSTEM_CLOCK, latency_target_s=0.4,
                          max_merged_chars=0, timing=lambda: None,
                          share=lambda: None)  # fmt: skip
    text, offset, chunks = request.text, 0, []
    while offset < len(text):
        rest = text[offset:]
        end = planner.call_end(rest, streams=backend.streams_within_segment,
                               max_chars=backend.max_input_chars)  # fmt: skip
        call = dataclasses.replace(request, text=rest[:end])
        chunks += [chunk async for chunk in backend.synthesize(call)]
        offset += end
    return chunks
