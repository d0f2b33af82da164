"""Frame encoders (Opus through PyAV's bundled libopus, raw PCM16, G.711 mu-law and A-law) and
the frame decoders that undo them.

An encoder takes exactly one frame of float32 mono samples at a time and returns the encoded
packets. One encoder lives for a whole stream: Opus carries state from packet to packet, so
re-creating it per chunk would put an audible seam at every chunk boundary.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import av
import numpy as np
from numpy.typing import NDArray

from gateway.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

__all__ = [
    "FrameDecoder",
    "FrameEncoder",
    "G711Encoder",
    "G711Law",
    "OpusDecoder",
    "OpusEncoder",
    "OpusOptions",
    "Pcm16Encoder",
    "frame_decoder",
    "opus_head",
]

OPUS_DECODE_RATE: Final = 48000
Float32Array = NDArray[np.float32]


class FrameEncoder(Protocol):
    """Turns fixed-size frames of float32 samples into packets."""

    @property
    def frame_samples(self) -> int:
        """Samples per frame this encoder accepts."""
        ...

    @property
    def preskip(self) -> int:
        """Samples of encoder delay: input sample ``i`` decodes at output sample ``i + preskip``."""
        ...

    def encode(self, frame: Float32Array) -> list[bytes]:
        """Encode exactly ``frame_samples`` samples; returns zero or more packets."""
        ...

    def reset(self) -> None:
        """Start over as a new encoder: no state is carried from the packets before (the
        next input sample again comes out ``preskip`` samples later)."""
        ...


class Pcm16Encoder:
    """Little-endian signed 16-bit PCM: no delay, one packet per frame."""

    def __init__(self, *, sample_rate: int, frame_ms: int) -> None:
        self._frame_samples = sample_rate * frame_ms // 1000

    @property
    def frame_samples(self) -> int:
        return self._frame_samples

    @property
    def preskip(self) -> int:
        return 0

    def encode(self, frame: Float32Array) -> list[bytes]:
        return [_pcm16(frame).tobytes()]

    def reset(self) -> None:
        """PCM carries no state."""


def _pcm16(samples: Float32Array) -> NDArray[np.int16]:
    pcm16: NDArray[np.int16] = np.rint(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    return pcm16


class G711Law(enum.StrEnum):
    """The two companding laws of G.711."""

    ULAW = "ulaw"
    ALAW = "alaw"


class G711Encoder(Pcm16Encoder):
    """G.711 mu-law or A-law (:mod:`gateway.audio.g711`): framed as PCM16, each sample coded
    in one byte; no delay, one packet per frame."""

    def __init__(self, law: G711Law, *, sample_rate: int, frame_ms: int) -> None:
        super().__init__(sample_rate=sample_rate, frame_ms=frame_ms)
        self._code = ulaw_encode if law is G711Law.ULAW else alaw_encode

    def encode(self, frame: Float32Array) -> list[bytes]:
        return [self._code(_pcm16(frame))]


@dataclass(frozen=True, slots=True)
class OpusOptions:
    """libopus encoder settings."""

    sample_rate: int = 24000
    frame_ms: int = 20
    bitrate: int = 40000
    vbr: str = "constrained"  # "on", "off" or "constrained"
    application: str = "voip"  # "voip", "audio" or "lowdelay"
    complexity: int = 1


class OpusEncoder:
    """A libopus encoder (through PyAV) for one mono stream, one packet per frame."""

    def __init__(self, options: OpusOptions) -> None:
        self._options = options
        self._context = self._open()
        self._frame_samples = int(self._context.frame_size)
        self._pts = 0
        self._reset_pending = False
        self._head = bytes(self._context.extradata or b"")
        # The OpusHead header states the pre-skip in 48 kHz samples (RFC 7845, section 5.1).
        preskip_48k: int = struct.unpack_from("<H", self._head, 10)[0]
        self._preskip = preskip_48k * options.sample_rate // OPUS_DECODE_RATE

    def _open(self) -> av.AudioCodecContext:
        options = self._options
        context = av.CodecContext.create("libopus", "w")
        context.sample_rate = options.sample_rate
        context.layout = "mono"
        context.format = av.AudioFormat("flt")
        context.bit_rate = options.bitrate
        context.options = {
            "vbr": options.vbr,
            "application": options.application,
            "frame_duration": str(options.frame_ms),
            "compression_level": str(options.complexity),
        }
        context.open()
        return context

    @property
    def frame_samples(self) -> int:
        return self._frame_samples

    @property
    def preskip(self) -> int:
        return self._preskip

    @property
    def head(self) -> bytes:
        """The OpusHead identification header (for Ogg files and WebCodecs descriptions)."""
        return self._head

    def encode(self, frame: Float32Array) -> list[bytes]:
        if frame.shape != (self._frame_samples,):
            raise ValueError(f"expected {self._frame_samples} samples, got {frame.shape}")
        av_frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(frame, dtype=np.float32)[None, :], format="flt", layout="mono"
        )
        av_frame.sample_rate = self._options.sample_rate
        if self._reset_pending:
            self._context, self._pts, self._reset_pending = self._open(), 0, False
        av_frame.pts = self._pts
        self._pts += self._frame_samples
        return [bytes(packet) for packet in self._context.encode(av_frame)]

    def reset(self) -> None:
        """A new libopus encoder with the same settings (the old one's lookahead is dropped).
        A decoder that goes on from the last packet sent decodes the new packets cleanly: the
        old audio fades out within the encoder delay, with no burst of audio never sent.

        The new encoder is made by the next :meth:`encode`: freeing the old one can take tens of
        milliseconds, which belong in the encoder threads, not in a barge-in on the event loop.
        """
        self._reset_pending = True


def opus_head(*, preskip: int, sample_rate: int, channels: int = 1) -> bytes:
    """An OpusHead header (RFC 7845) for a stream with the given pre-skip at ``sample_rate``."""
    preskip_48k = preskip * OPUS_DECODE_RATE // sample_rate
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, preskip_48k, sample_rate, 0, 0)


class OpusDecoder:
    """Decodes a stream's Opus packets back to float32 PCM at the stream's sample rate.

    libopus decodes at 48 kHz; the output is resampled to ``sample_rate``. Decoded sample ``i``
    is session-timeline sample ``i`` (the encoder delay is already part of the timeline).
    """

    def __init__(self, sample_rate: int = 24000) -> None:
        self._decoder = av.CodecContext.create("opus", "r")
        self._decoder.sample_rate = OPUS_DECODE_RATE
        self._decoder.layout = "mono"
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        self.decoded_48k = 0

    def decode(self, packet: bytes) -> Float32Array:
        """Decode one packet; returns the samples that are ready (the resampler lags a little)."""
        out: list[Float32Array] = []
        for frame in self._decoder.decode(av.Packet(packet)):
            self.decoded_48k += frame.samples
            out.extend(self._resampled(frame))
        return _joined(out)

    def finish(self) -> Float32Array:
        """The samples still held by the resampler, at the end of the stream."""
        return _joined(self._resampled(None))

    def _resampled(self, frame: av.AudioFrame | None) -> list[Float32Array]:
        return [f.to_ndarray()[0].astype(np.float32) for f in self._resampler.resample(frame)]


def _joined(parts: list[Float32Array]) -> Float32Array:
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts)


class FrameDecoder(Protocol):
    """Turns a stream's packets back into float32 samples, in order."""

    def decode(self, packet: bytes) -> Float32Array:
        """Decode one packet; returns the samples that are ready."""
        ...

    def finish(self) -> Float32Array:
        """The samples still held, at the end of the stream."""
        ...


class _SampleDecoder:
    """Formats with one sample per fixed number of bytes (PCM16, G.711): nothing is held."""

    def __init__(self, to_int16: Callable[[bytes], NDArray[np.int16]]) -> None:
        self._to_int16 = to_int16

    def decode(self, packet: bytes) -> Float32Array:
        return self._to_int16(packet).astype(np.float32) / 32768.0

    def finish(self) -> Float32Array:
        return np.zeros(0, dtype=np.float32)


def frame_decoder(fmt: str, sample_rate: int) -> FrameDecoder:
    """The decoder of a stream's ``format`` (``opus``, ``pcm16``, ``ulaw``, ``alaw``)."""
    match fmt:
        case "opus":
            return OpusDecoder(sample_rate)
        case "pcm16":
            return _SampleDecoder(lambda data: np.frombuffer(data, dtype="<i2"))
        case G711Law.ULAW:
            return _SampleDecoder(ulaw_decode)
        case G711Law.ALAW:
            return _SampleDecoder(alaw_decode)
    raise ValueError(f"unknown audio format {fmt!r}")
