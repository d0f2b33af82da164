"""Play decoded audio on the sound card, with a playback clock (optional: ``sounddevice``).

``pip install 'tts-gateway[play]'`` installs sounddevice; on Linux it needs the PortAudio
library too (Debian/Ubuntu: ``apt-get install libportaudio2``).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

__all__ = ["PlaybackUnavailable", "SoundOutput", "open_sound_output"]


class PlaybackUnavailable(Exception):
    """No way to play sound here; the message says what is missing."""


def open_sound_output(sample_rate: int, *, max_buffer_s: float = 30.0) -> SoundOutput:
    """Open the default output device. Raises PlaybackUnavailable with a clear reason."""
    try:
        import sounddevice
    except ImportError:
        raise PlaybackUnavailable(
            "playing needs the optional sounddevice package: pip install 'tts-gateway[play]'"
        ) from None
    except OSError as exc:  # sounddevice imports, but PortAudio is missing
        raise PlaybackUnavailable(
            f"playing needs the PortAudio library ({exc}); "
            "on Debian or Ubuntu: apt-get install libportaudio2"
        ) from None
    try:
        device = sounddevice.query_devices(kind="output")
    except sounddevice.PortAudioError:
        raise PlaybackUnavailable(
            "no sound output device found; write the audio to a file with --out instead"
        ) from None
    return SoundOutput(sounddevice, sample_rate, str(device["name"]), max_buffer_s=max_buffer_s)


class SoundOutput:
    """Plays float32 mono audio in order on an output stream and counts the samples played.

    ``write`` waits while more than ``max_buffer_s`` of audio is queued, so a caller that reads
    audio from the gateway faster than real time slows its socket down instead of buffering
    without bound.
    """

    def __init__(
        self, sounddevice: Any, sample_rate: int, device_name: str, *, max_buffer_s: float
    ) -> None:
        self.device_name = device_name
        self.sample_rate = sample_rate
        self._max_buffer = int(max_buffer_s * sample_rate)
        self._lock = threading.Lock()
        self._queue: collections.deque[NDArray[np.float32]] = collections.deque()
        self._queued = 0  # device-rate samples queued
        self._played = 0  # device-rate samples handed to the device
        self._resampler: av.AudioResampler | None = None
        try:
            self._stream = sounddevice.OutputStream(
                samplerate=sample_rate, channels=1, dtype="float32", callback=self._callback
            )
            self.device_rate = sample_rate
        except sounddevice.PortAudioError:
            # The device does not take the stream's rate: resample to its own.
            self.device_rate = int(sounddevice.query_devices(kind="output")["default_samplerate"])
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.device_rate)
            self._stream = sounddevice.OutputStream(
                samplerate=self.device_rate, channels=1, dtype="float32", callback=self._callback
            )
        self._latency_s = float(self._stream.latency)
        self._stream.start()

    def _callback(self, outdata: NDArray[np.float32], frames: int, time: Any, status: Any) -> None:
        out = outdata[:, 0]
        filled = 0
        with self._lock:
            while filled < frames and self._queue:
                head = self._queue[0]
                take = min(frames - filled, head.size)
                out[filled : filled + take] = head[:take]
                filled += take
                if take == head.size:
                    self._queue.popleft()
                else:
                    self._queue[0] = head[take:]
            self._played += filled
        out[filled:] = 0.0  # ran dry: silence until more comes (a pause, not a skip)

    @property
    def position(self) -> int:
        """Samples (at the stream rate) that have reached the listener: played minus latency."""
        with self._lock:
            played = self._played
        heard = played * self.sample_rate / self.device_rate - self._latency_s * self.sample_rate
        return max(0, int(heard))

    @property
    def buffered(self) -> int:
        """Samples (at the stream rate) written and not played yet."""
        with self._lock:
            waiting = self._queued - self._played
        return max(0, int(waiting * self.sample_rate / self.device_rate))

    async def write(self, samples: NDArray[np.float32]) -> None:
        """Queue audio at the stream rate; waits while the queue is full."""
        # The queue drains on PortAudio's thread; polling costs less than waking the loop from
        # every audio callback.
        while self.buffered > self._max_buffer:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self._enqueue(self._to_device(samples))

    def _enqueue(self, samples: NDArray[np.float32]) -> None:
        if samples.size:
            with self._lock:
                self._queue.append(samples)
                self._queued += samples.size

    def _to_device(self, samples: NDArray[np.float32] | None) -> NDArray[np.float32]:
        if self._resampler is None:
            return np.zeros(0, np.float32) if samples is None else samples.astype(np.float32)
        frame = None
        if samples is not None:
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = self.sample_rate
        parts = [f.to_ndarray()[0] for f in self._resampler.resample(frame)]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)

    async def drain(self) -> None:
        """Wait until everything written has been played (and the device latency has passed).

        Gives up after the queued audio's duration plus 5 s if the device stops taking audio.
        """
        self._enqueue(self._to_device(None))  # what the resampler still holds
        deadline = asyncio.get_running_loop().time() + self.buffered / self.sample_rate + 5.0
        while self.buffered > 0 and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await asyncio.sleep(self._latency_s)

    def close(self) -> None:
        """Stop the stream at once (what is queued is dropped)."""
        self._stream.stop()
        self._stream.close()
