"""The per-session audio output: fixed-size frames on one sample-accurate timeline.

PCM of any chunk size goes in; frames of exactly ``frame_samples`` come out, each stamped with
its position on the session timeline. A partial frame is carried over to the next chunk, so
chunk boundaries never reach the encoder. The timeline is what a decoder outputs: for Opus,
input sample ``i`` plays at timeline sample ``i + preskip``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gateway.audio.codecs import FrameEncoder

__all__ = ["AudioOut", "Frame"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded frame: ``seq`` counts frames sent, ``sample_start`` is its timeline position."""

    seq: int
    sample_start: int
    data: bytes


class AudioOut:
    """Frames and encodes one session's audio (not thread-safe; one owner)."""

    def __init__(self, encoder: FrameEncoder) -> None:
        self._encoder = encoder
        self._frame = encoder.frame_samples
        self._partial = np.zeros(0, dtype=np.float32)
        self._frames_sent = 0
        # Real samples may sit in the partial frame or the encoder's lookahead since the last drain.
        self._holds_audio = False

    @property
    def frame_samples(self) -> int:
        return self._frame

    @property
    def preskip(self) -> int:
        return self._encoder.preskip

    @property
    def cursor(self) -> int:
        """Timeline position at which the next written sample will play."""
        return self.sent_end + self._encoder.preskip + len(self._partial)

    @property
    def sent_end(self) -> int:
        """Timeline position where the frames returned so far end."""
        return self._frames_sent * self._frame

    def write(self, pcm: NDArray[np.float32]) -> list[Frame]:
        """Append samples; returns the frames completed by them."""
        if not len(pcm):
            return []
        self._holds_audio = True
        samples = np.concatenate([self._partial, pcm.astype(np.float32, copy=False)])
        whole = len(samples) // self._frame * self._frame
        self._partial = samples[whole:]
        return [
            frame
            for start in range(0, whole, self._frame)
            for frame in self._encode(samples[start : start + self._frame])
        ]

    def drain(self) -> list[Frame]:
        """Push out every sample written so far, padding with silence (which joins the timeline).

        After a drain, ``sent_end`` is at or past the end of all written audio.
        """
        if not self._holds_audio:
            return []
        frames = self.write(np.zeros(-len(self._partial) % self._frame, dtype=np.float32))
        for _ in range(-(-self._encoder.preskip // self._frame)):
            frames += self._encode(np.zeros(self._frame, dtype=np.float32))
        self._holds_audio = False
        return frames

    def cut(self, fade_samples: int) -> list[Frame]:
        """Barge-in: end the audio now. Returns the last frames, which carry what was held.

        The held partial frame is faded out over at most ``fade_samples`` and pushed out with
        the encoder's lookahead, like :meth:`drain`. Sending these frames keeps every decoder in
        step with the encoder (a dropped Opus packet would make the next one decode with a
        burst of the old audio); they end the cancelled audio on the timeline.
        """
        n = min(fade_samples, len(self._partial))
        if n:
            ramp = np.cos(np.linspace(0, np.pi / 2, n, dtype=np.float32)) ** 2
            self._partial = self._partial.copy()
            self._partial[-n:] *= ramp
        return self.drain()

    def _encode(self, samples: NDArray[np.float32]) -> list[Frame]:
        packets = self._encoder.encode(samples)
        frames = []
        for packet in packets:
            frames.append(Frame(self._frames_sent, self.sent_end, packet))
            self._frames_sent += 1
        return frames
