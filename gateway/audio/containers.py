"""Audio files written as they grow: the response formats of ``POST /v1/audio/speech``.

A :class:`ContainerWriter` takes the stream's 16-bit PCM a frame at a time and returns the bytes
of the file that are ready so far, so a response body can carry them at once. One writer (one
encoder, one muxer) serves one response. The output is meant for a pipe: nothing is rewritten
at the end, so headers that would normally hold the length say "unknown" (WAV) or are left out.

| format | container | codec |
| --- | --- | --- |
| ``mp3`` | MPEG audio | MP3 (libmp3lame) |
| ``opus`` | Ogg (RFC 7845) | Opus (libopus; :mod:`gateway.audio.ogg`) |
| ``aac`` | ADTS | AAC-LC (FFmpeg's encoder) |
| ``flac`` | native FLAC | FLAC |
| ``wav`` | RIFF WAVE, sizes 0xFFFFFFFF | 16-bit PCM |
| ``pcm`` | none | 16-bit little-endian PCM |
| ``ulaw`` | none | G.711 mu-law, one byte per sample (:mod:`gateway.audio.g711`) |
| ``alaw`` | none | G.711 A-law, one byte per sample |
"""

from __future__ import annotations

import enum
import io
import struct
from collections.abc import Callable
from typing import Final, Protocol

import av
import numpy as np
from numpy.typing import NDArray

from gateway.audio.codecs import OpusEncoder, OpusOptions
from gateway.audio.g711 import alaw_encode, ulaw_encode
from gateway.audio.ogg import OggOpusWriter

__all__ = ["MEDIA_TYPES", "ContainerWriter", "ResponseFormat", "container_writer"]


class ResponseFormat(enum.StrEnum):
    """The audio formats of OpenAI's speech API, and G.711 for telephony."""

    MP3 = "mp3"
    OPUS = "opus"
    AAC = "aac"
    FLAC = "flac"
    WAV = "wav"
    PCM = "pcm"
    ULAW = "ulaw"
    ALAW = "alaw"


MEDIA_TYPES: Final[dict[ResponseFormat, str]] = {
    ResponseFormat.MP3: "audio/mpeg",
    ResponseFormat.OPUS: "audio/ogg; codecs=opus",
    ResponseFormat.AAC: "audio/aac",
    ResponseFormat.FLAC: "audio/flac",
    ResponseFormat.WAV: "audio/wav",
    ResponseFormat.PCM: "audio/pcm",
    # RFC 4856's names for G.711 (8 kHz, the only rate served).
    ResponseFormat.ULAW: "audio/PCMU",
    ResponseFormat.ALAW: "audio/PCMA",
}

# Ogg pages are written every this many Opus packets (and at every flush): 200 ms at 20 ms
# frames, so a streaming client waits at most that long for audio that is already encoded.
_OGG_PACKETS_PER_PAGE: Final = 10
_UNKNOWN_SIZE: Final = 0xFFFFFFFF


class ContainerWriter(Protocol):
    """Encodes and muxes one response's audio; every method returns the bytes ready so far."""

    def write(self, pcm16: bytes) -> bytes:
        """Add mono 16-bit little-endian samples (any whole number of samples)."""
        ...

    def flush(self) -> bytes:
        """Push out what is encoded (e.g. an Ogg page) without ending the file."""
        ...

    def finish(self) -> bytes:
        """End the file: the encoder's tail and the trailer. Nothing may be written after."""
        ...

    def close(self) -> None:
        """Release the encoder without ending the file (the response was abandoned)."""
        ...


def container_writer(
    fmt: ResponseFormat, *, sample_rate: int, bitrate: int, opus: OpusOptions
) -> ContainerWriter:
    """A writer for ``fmt``; ``bitrate`` is for MP3 and AAC, ``opus`` configures Ogg Opus."""
    match fmt:
        case ResponseFormat.PCM:
            return _RawPcm()
        case ResponseFormat.ULAW:
            return _G711(ulaw_encode)
        case ResponseFormat.ALAW:
            return _G711(alaw_encode)
        case ResponseFormat.WAV:
            return _Wav(sample_rate)
        case ResponseFormat.OPUS:
            return _OggOpus(opus)
        case ResponseFormat.MP3:
            return _Muxed("mp3", "libmp3lame", sample_rate, bitrate)
        case ResponseFormat.AAC:
            return _Muxed("adts", "aac", sample_rate, bitrate)
        case ResponseFormat.FLAC:
            return _Muxed("flac", "flac", sample_rate, None)


class _RawPcm:
    def write(self, pcm16: bytes) -> bytes:
        return pcm16

    def flush(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""

    def close(self) -> None:
        pass


class _G711:
    """Raw G.711 bytes, converted from the 16-bit samples as they come."""

    def __init__(self, encode: Callable[[NDArray[np.int16]], bytes]) -> None:
        self._encode = encode

    def write(self, pcm16: bytes) -> bytes:
        return self._encode(np.frombuffer(pcm16, "<i2"))

    def flush(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""

    def close(self) -> None:
        pass


def wav_header(sample_rate: int) -> bytes:
    """A mono 16-bit WAV header whose sizes say "unknown" (the stream ends at end of file)."""
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF" + struct.pack("<I", _UNKNOWN_SIZE) + b"WAVE"
        b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", _UNKNOWN_SIZE)
    )


class _Wav:
    def __init__(self, sample_rate: int) -> None:
        self._header: bytes | None = wav_header(sample_rate)

    def write(self, pcm16: bytes) -> bytes:
        header, self._header = self._header or b"", None
        return header + pcm16

    def flush(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return self.write(b"")

    def close(self) -> None:
        pass


class _OggOpus:
    """libopus packets in Ogg pages; the pages go out every few packets and at each flush."""

    def __init__(self, options: OpusOptions) -> None:
        self._encoder = OpusEncoder(options)
        self._options = options
        self._out = io.BytesIO()
        self._writer: OggOpusWriter | None = None
        self._held = np.zeros(0, np.float32)
        self._unpaged = 0

    def write(self, pcm16: bytes) -> bytes:
        samples = np.frombuffer(pcm16, "<i2").astype(np.float32) / 32768.0
        self._encode(samples)
        if self._unpaged >= _OGG_PACKETS_PER_PAGE:
            return self.flush()
        return b""  # the packets (and at first the headers) wait for their page

    def flush(self) -> bytes:
        if self._writer is not None and self._unpaged:
            self._writer.flush()
            self._unpaged = 0
        return self._take()

    def finish(self) -> bytes:
        step = self._encoder.frame_samples
        # Pad the last frame, then push the encoder's lookahead out with silence.
        tail = -len(self._held) % step + -(-self._encoder.preskip // step) * step
        self._encode(np.zeros(tail, np.float32))
        self._ogg().close()
        return self._take()

    def close(self) -> None:
        self._out = io.BytesIO()

    def _ogg(self) -> OggOpusWriter:
        if self._writer is None:  # the headers go out with the first audio
            self._writer = OggOpusWriter(
                self._out,
                head=self._encoder.head,
                frame_samples=self._encoder.frame_samples,
                sample_rate=self._options.sample_rate,
            )
        return self._writer

    def _encode(self, samples: np.ndarray) -> None:
        held = np.concatenate([self._held, samples])
        step = self._encoder.frame_samples
        whole = len(held) // step * step
        for start in range(0, whole, step):
            for packet in self._encoder.encode(held[start : start + step]):
                self._ogg().write(packet)
                self._unpaged += 1
        self._held = held[whole:]

    def _take(self) -> bytes:
        data = self._out.getvalue()
        self._out.seek(0)
        self._out.truncate()
        return data


class _Sink:
    """A write-only, non-seekable file for PyAV: collects what the muxer writes."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def take(self) -> bytes:
        data = bytes(self.data)
        self.data.clear()
        return data


class _Muxed:
    """An FFmpeg encoder and muxer (through PyAV) writing into memory, packet by packet."""

    def __init__(self, container: str, codec: str, sample_rate: int, bitrate: int | None) -> None:
        self._sink = _Sink()
        # flush_packets: every muxed packet reaches the sink at once (no 32 KiB I/O buffer).
        self._container = av.open(self._sink, "w", format=container, options={"flush_packets": "1"})
        stream = self._container.add_stream(codec, rate=sample_rate)
        assert isinstance(stream, av.AudioStream)
        self._stream = stream
        self._stream.layout = "mono"
        if bitrate is not None:
            self._stream.bit_rate = bitrate
        self._rate = sample_rate
        self._pts = 0
        self._closed = False

    def write(self, pcm16: bytes) -> bytes:
        samples = np.frombuffer(pcm16, "<i2")
        if not len(samples):
            return b""
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += len(samples)
        self._mux(frame)
        return self._sink.take()

    def flush(self) -> bytes:
        return self._sink.take()

    def finish(self) -> bytes:
        self._mux(None)
        self._closed = True
        self._container.close()
        return self._sink.take()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._container.close()

    def _mux(self, frame: av.AudioFrame | None) -> None:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
