"""Decoding audio that arrives over the network in arbitrary byte chunks (no I/O).

:class:`Pcm16Reader` turns raw signed 16-bit little-endian mono bytes into float32 samples,
keeping an odd trailing byte for the next chunk. :class:`WavReader` does the same for a RIFF/WAVE
stream (PCM 16/24/32-bit or IEEE float, any channel count, mixed down to mono), reading the
header as it arrives and checking at the end that the data chunk was complete. Neither
resamples: the audio keeps its own rate (:mod:`gateway.audio.resample` is the one resampler).
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np
from numpy.typing import NDArray

from gateway.core.errors import AudioFormatError

__all__ = ["AudioFormatError", "Pcm16Reader", "WavReader"]

Pcm = NDArray[np.float32]
_EMPTY: Final = np.zeros(0, dtype=np.float32)
_MAX_HEADER: Final = 1 << 16  # a WAV header larger than this is not one we can stream
_UNKNOWN_SIZES: Final = (0, 0xFFFFFFFF)  # data sizes that streaming writers use for "unknown"


class Pcm16Reader:
    """Raw s16le mono bytes -> float32 samples."""

    def __init__(self) -> None:
        self._carry = b""
        self.samples = 0

    def feed(self, data: bytes) -> Pcm:
        data = self._carry + data
        usable = len(data) - len(data) % 2
        self._carry = data[usable:]
        pcm = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
        self.samples += len(pcm)
        return pcm

    def finish(self) -> None:
        """The stream ended; raises if it ended inside a sample."""
        if self._carry:
            raise AudioFormatError("the audio ended in the middle of a 16-bit sample")


class WavReader:
    """A RIFF/WAVE byte stream -> mono float32 samples at :attr:`sample_rate`."""

    def __init__(self) -> None:
        self._buffer = b""
        self._header_done = False
        self.sample_rate = 0
        self.channels = 0
        self._width = 0
        self._float = False
        self._data_left: int | None = None  # None: size unknown, read to the end
        self.samples = 0

    @property
    def header_done(self) -> bool:
        return self._header_done

    def feed(self, data: bytes) -> Pcm:
        self._buffer += data
        if not self._header_done:
            self._parse_header()
            if not self._header_done:
                if len(self._buffer) > _MAX_HEADER:
                    raise AudioFormatError("no WAV data chunk in the first 64 KiB")
                return _EMPTY
        return self._decode()

    def finish(self) -> None:
        """The stream ended; raises if the header or the data chunk is incomplete."""
        if not self._header_done:
            raise AudioFormatError("the WAV stream ended before its header was complete")
        if self._data_left:
            missing = self._data_left - len(self._buffer)
            raise AudioFormatError(f"the WAV stream ended {missing} bytes short of its data size")
        if self._data_left is None and len(self._buffer) % (self._width * self.channels):
            raise AudioFormatError("the WAV stream ended in the middle of a sample")

    def _parse_header(self) -> None:
        buf = self._buffer
        if len(buf) < 12:
            return
        if buf[:4] not in (b"RIFF", b"RIFX") or buf[8:12] != b"WAVE":
            raise AudioFormatError("not a WAV stream (no RIFF/WAVE header)")
        if buf[:4] == b"RIFX":
            raise AudioFormatError("big-endian WAV (RIFX) is not supported")
        pos = 12
        while len(buf) >= pos + 8:
            chunk_id, size = buf[pos : pos + 4], struct.unpack("<I", buf[pos + 4 : pos + 8])[0]
            body = pos + 8
            if chunk_id == b"data":
                if not self.channels:
                    raise AudioFormatError("WAV data chunk before its fmt chunk")
                self._data_left = None if size in _UNKNOWN_SIZES else size
                self._buffer = buf[body:]
                self._header_done = True
                return
            if len(buf) < body + size:
                return
            if chunk_id == b"fmt ":
                self._parse_fmt(buf[body : body + size])
            pos = body + size + (size & 1)

    def _parse_fmt(self, fmt: bytes) -> None:
        if len(fmt) < 16:
            raise AudioFormatError("WAV fmt chunk too short")
        tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
        if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the subformat's tag
            tag = struct.unpack("<H", fmt[24:26])[0]
        if tag == 1 and bits in (16, 24, 32):
            self._float = False
        elif tag == 3 and bits == 32:
            self._float = True
        else:
            raise AudioFormatError(f"unsupported WAV encoding (format {tag}, {bits} bits)")
        if channels < 1 or rate < 1:
            raise AudioFormatError("WAV fmt chunk with no channels or no sample rate")
        self.channels, self.sample_rate, self._width = channels, rate, bits // 8

    def _decode(self) -> Pcm:
        frame = self._width * self.channels
        available = len(self._buffer)
        if self._data_left is not None:
            available = min(available, self._data_left)
        usable = available - available % frame
        raw, self._buffer = self._buffer[:usable], self._buffer[usable:]
        if self._data_left is not None:
            self._data_left -= usable
            if self._data_left == 0:
                self._buffer = b""  # chunks after the data (LIST, id3) are not audio
        if not raw:
            return _EMPTY
        samples: Pcm = self._samples(raw).reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
        self.samples += len(samples)
        return samples

    def _samples(self, raw: bytes) -> Pcm:
        if self._float:
            return np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if self._width == 2:
            return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        if self._width == 4:
            return (np.frombuffer(raw, dtype="<i4") / 2147483648.0).astype(np.float32)
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return (value / float(1 << 23)).astype(np.float32)
