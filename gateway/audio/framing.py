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

    def cut(self, frames_kept: int) -> None:
        """Barge-in: forget the frames after the first ``frames_kept`` (made but never sent)
        and the samples held, and start the encoder afresh. The timeline goes on where the
        kept frames end, without a frame of the cancelled audio: the next sample written plays
        ``preskip`` samples after that end, as at the start of the session (for Opus, the old
        audio's decoder tail fades out in that delay; see :meth:`OpusEncoder.reset`)."""
        if not 0 <= frames_kept <= self._frames_sent:
            raise ValueError(f"frames_kept: {frames_kept} of {self._frames_sent} frames made")
        self._frames_sent = frames_kept
        self._partial = np.zeros(0, dtype=np.float32)
        self._holds_audio = False
        self._encoder.reset()

    def _encode(self, samples: NDArray[np.float32]) -> list[Frame]:
        packets = self._encoder.encode(samples)
        frames = []
        for packet in packets:
            frames.append(Frame(self._frames_sent, self.sent_end, packet))
            self._frames_sent += 1
        return frames
