"""Collect a session's audio: decode to PCM, write .wav or .ogg, measure the latency."""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gateway.audio.codecs import frame_decoder, opus_head
from gateway.audio.ogg import OggOpusWriter
from gateway.core.protocol import Audio, Ready

__all__ = ["AudioCollector"]


@dataclass
class AudioCollector:
    """Keeps every audio frame of a session, in order, with its arrival time."""

    ready: Ready
    frames: list[Audio] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    def add(self, frame: Audio, at: float) -> None:
        self.frames.append(frame)
        self.arrivals.append(at)

    @property
    def timeline_samples(self) -> int:
        """Samples on the session timeline covered by the frames received."""
        return len(self.frames) * self.ready.frame_samples

    @property
    def duration_s(self) -> float:
        return self.timeline_samples / self.ready.sample_rate

    def pcm(self) -> NDArray[np.float32]:
        """The decoded audio, float32 mono at the stream's sample rate (timeline order)."""
        decoder = frame_decoder(self.ready.format, self.ready.sample_rate)
        parts = [decoder.decode(frame.data) for frame in self.frames]
        parts.append(decoder.finish())
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def write(self, path: str | Path) -> None:
        """Write ``.ogg`` (the Opus packets as received, no re-encoding) or ``.wav`` (16-bit
        PCM, any format decoded)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".ogg", ".opus"):
            self._write_ogg(path)
        elif suffix == ".wav":
            self._write_wav(path)
        else:
            raise ValueError(f"cannot write {path.name}: use a .ogg or .wav file name")

    def _write_ogg(self, path: Path) -> None:
        if self.ready.format != "opus":
            raise ValueError("an .ogg file needs the opus format; use .wav for pcm16")
        head = opus_head(preskip=self.ready.preskip, sample_rate=self.ready.sample_rate)
        with path.open("wb") as out:
            writer = OggOpusWriter(
                out,
                head=head,
                frame_samples=self.ready.frame_samples,
                sample_rate=self.ready.sample_rate,
            )
            for frame in self.frames:
                writer.write(frame.data)
            writer.close()

    def _write_wav(self, path: Path) -> None:
        pcm = self.pcm()[self.ready.preskip :]  # the encoder delay carries no audio of its own
        samples = np.rint(np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2")
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(self.ready.sample_rate)
            out.writeframes(samples.tobytes())
