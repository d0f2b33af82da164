"""The last stage of the speaking pipeline: shaped PCM -> encoded frames -> the session's sink,
paced to the listener, with the gateway's model of the listener's playback.

A :class:`Delivery` belongs to one session. It encodes a few frames at a time (in the encoder
threads when the gateway has them: the session with the least audio buffered goes first),
drops the frames encoded but not yet handed over when a cancel lands (the timeline goes on
without a hole, with a fresh encoder), and hands frames to an :class:`AudioSink`: protocol
messages on a WebSocket (:class:`MessageSink`), or a file being written for a REST response.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from gateway.audio.framing import AudioOut, Frame
from gateway.backends.threads import WorkerPool
from gateway.core.metrics import SessionMetrics
from gateway.core.playback import PlaybackModel
from gateway.core.protocol import Audio, ServerMessage
from gateway.speech.clock import Clock

__all__ = ["AudioSink", "Delivery", "MessageSink"]

# Frames encoded per call of the encoder threads (a cancel waits for at most these): few
# while the listener's buffer is short, more once it holds a second.
_FRAMES_PER_ENCODE: Final = 5
_LARGE_ENCODE: Final = 25
_BUFFERED_FOR_LARGE_S: Final = 1.0
# Audio a session held back by pacing sends in one go once it may (see Delivery._pace).
_PACE_BATCH_S: Final = 0.02


class AudioSink(Protocol):
    """Where a session's encoded frames go, in timeline order."""

    async def frame(self, frame: Frame) -> None:
        """Take one frame (a cancel may land at this await: the frame then counts as sent
        only once this returns)."""
        ...

    async def boundary(self) -> None:
        """A natural boundary in the audio (the first audio, a segment's end, a flush): a
        sink that buffers (a container writer) hands out what it holds."""
        ...


class MessageSink:
    """Frames as ``audio`` messages, through the session's send."""

    def __init__(self, send: Callable[[ServerMessage], Awaitable[None]]) -> None:
        self._send = send

    async def frame(self, frame: Frame) -> None:
        await self._send(Audio(frame.seq, frame.sample_start, frame.data))

    async def boundary(self) -> None:
        """Messages are not buffered: nothing to do."""


class Delivery:
    """Encodes, paces and hands over one session's audio.

    ``pace_ahead_s``: the most audio the listener may hold unplayed before sending waits (None:
    unpaced, as fast as the sink takes it). ``after_frame`` runs after every frame handed over
    (progress reports).
    """

    def __init__(
        self,
        *,
        audio: AudioOut,
        sink: AudioSink,
        clock: Clock,
        metrics: SessionMetrics,
        sample_rate: int,
        pace_ahead_s: float | None,
        encoders: WorkerPool | None,
        after_frame: Callable[[], Awaitable[None]],
    ) -> None:
        self._audio = audio
        self._sink = sink
        self._clock = clock
        self._metrics = metrics
        self._rate = sample_rate
        self._pace_limit = None if pace_ahead_s is None else round(pace_ahead_s * sample_rate)
        self._encoders = encoders  # None: encode on the event loop
        self._after_frame = after_frame
        self._unsent: deque[Frame] = deque()
        self._handed = 0  # frames handed over to the sink
        self.playback = PlaybackModel(sample_rate)

    @property
    def frame_samples(self) -> int:
        return self._audio.frame_samples

    @property
    def cursor(self) -> int:
        """Timeline position at which the next sample written will play."""
        return self._audio.cursor

    @property
    def sent_end(self) -> int:
        """Timeline position where the frames handed over to the sink so far end (frames
        encoded but still waiting for pacing do not count)."""
        return self._handed * self._audio.frame_samples

    def buffered_s(self) -> float:
        """Seconds of audio the listener holds unplayed now (the playback estimate)."""
        return self.playback.buffered(self._clock.now()) / self._rate

    async def emit(self, pcm: NDArray[np.float32]) -> None:
        """Encode and hand over audio a few frames at a time; more at once while the listener
        has plenty buffered (fewer hand-overs to the encoder threads)."""
        start = 0
        while start < len(pcm):
            many = self.buffered_s() >= _BUFFERED_FOR_LARGE_S
            end = start + self._audio.frame_samples * (
                _LARGE_ENCODE if many else _FRAMES_PER_ENCODE
            )
            await self._encode(pcm[start:end])
            await self.send(())
            start = end

    async def drain(self) -> None:
        """Hand over every sample written so far (the encoder's tail padded with silence)."""
        await self.send(self._audio.drain())

    def cut(self) -> None:
        """Barge-in: drop at once every frame not handed over yet (however much pacing held
        back) and the samples held; the timeline goes on where the handed-over frames end,
        with a fresh encoder (see :meth:`AudioOut.cut`). Nothing is handed over."""
        self._unsent.clear()
        self._audio.cut(self._handed)
        self.playback.stopped()

    async def boundary(self) -> None:
        await self._sink.boundary()

    async def _encode(self, pcm: NDArray[np.float32]) -> None:
        """Queue the frames ``pcm`` completes, encoded in the encoder threads (earliest
        deadline first: the session with the least audio buffered goes first).

        Once encoding has begun its frames are queued even if the task is cancelled meanwhile
        (the pool waits for the thread), so the timeline never has a hole.
        """
        if self._encoders is None:
            self._unsent.extend(self._audio.write(pcm))
            return
        deadline = self._clock.now() + self.buffered_s()
        await self._encoders.run(
            lambda: self._unsent.extend(self._audio.write(pcm)), deadline=deadline
        )

    async def send(self, frames: Iterable[Frame]) -> None:
        """Hand over frames in order. Frames made but not handed over stay queued for the next
        call (or are dropped by :meth:`cut`), so the timeline never has a hole."""
        self._unsent.extend(frames)
        while self._unsent:
            frame = self._unsent[0]
            await self._pace()
            await self._sink.frame(frame)
            self._unsent.popleft()  # no await since the hand-over: a cancel cannot land between
            self._handed = frame.seq + 1
            now = self._clock.now()
            self._metrics.frame_sent(len(frame.data), now)
            self.playback.sent(frame.sample_start + self._audio.frame_samples, now)
            await self._after_frame()

    async def _pace(self) -> None:
        """Wait while the listener holds more than ``pace_ahead_s`` of unplayed audio, so a
        session never runs far ahead of its listener (and synthesis waits with it).

        Once held back, it waits until a few frames fit, which then go out together: one
        wake-up per few frames instead of one per frame, for a client with seconds of audio
        in hand."""
        if self._pace_limit is None:
            return
        ahead = self.playback.buffered(self._clock.now()) - self._pace_limit
        if ahead > 0:
            await self._clock.sleep(ahead / self._rate + _PACE_BATCH_S)
