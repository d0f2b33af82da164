"""Ogg Opus files (RFC 7845) from already-encoded Opus packets, without re-encoding."""

from __future__ import annotations

import struct
from typing import BinaryIO, Final

__all__ = ["OggOpusWriter"]

_GRANULE_RATE: Final = 48000  # Ogg Opus granule positions always count 48 kHz samples
_PACKETS_PER_PAGE: Final = 50
_VENDOR: Final = b"tts-gateway"


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return table


_CRC_TABLE: Final = _crc_table()


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) & 0xFF) ^ byte]
    return crc


class OggOpusWriter:
    """Writes one mono Opus stream; every packet must hold ``frame_samples`` samples."""

    def __init__(
        self, out: BinaryIO, *, head: bytes, frame_samples: int, sample_rate: int, serial: int = 1
    ) -> None:
        self._out = out
        self._serial = serial
        self._sequence = 0
        self._granule = 0
        self._packet_granules = frame_samples * _GRANULE_RATE // sample_rate
        self._pending: list[bytes] = []
        self._write_page([head], granule=0, flags=0x02)
        tags = struct.pack("<I", len(_VENDOR)) + _VENDOR + struct.pack("<I", 0)
        self._write_page([b"OpusTags" + tags], granule=0, flags=0)

    def write(self, packet: bytes) -> None:
        """Add one Opus packet."""
        self._pending.append(packet)
        if len(self._pending) >= _PACKETS_PER_PAGE:
            self._flush_page(last=False)

    def flush(self) -> None:
        """Write the packets added so far as a page now (for streaming); none: nothing."""
        if self._pending:
            self._flush_page(last=False)

    def close(self) -> None:
        """Write the last page (end of stream); the file object stays open."""
        self._flush_page(last=True)

    def _flush_page(self, *, last: bool) -> None:
        self._granule += self._packet_granules * len(self._pending)
        self._write_page(self._pending, granule=self._granule, flags=0x04 if last else 0)
        self._pending = []

    def _write_page(self, packets: list[bytes], *, granule: int, flags: int) -> None:
        lacing = bytearray()
        for packet in packets:
            lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
        if len(lacing) > 255:
            raise ValueError("too many or too large packets for one Ogg page")
        header = struct.pack(
            "<4sBBqIIIB", b"OggS", 0, flags, granule, self._serial, self._sequence, 0, len(lacing)
        )
        page = header + bytes(lacing) + b"".join(packets)
        crc = _ogg_crc(page)
        page = page[:22] + struct.pack("<I", crc) + page[26:]
        self._out.write(page)
        self._sequence += 1
