"""G.711 (ITU-T Recommendation G.711): mu-law and A-law companding of 16-bit PCM, vectorized.

One byte per sample, 8 kHz in telephony (Twilio media streams and SIP trunks want mu-law).
Written from the Recommendation's segment tables: a sample's magnitude falls in one of eight
segments (doubling in width), coded as 3 bits of segment and 4 bits of position within it,
plus a sign bit. mu-law adds a bias of 33 (132 on the 16-bit scale) so its segments start at 0
and transmits the code inverted; A-law's first two segments share one step size and its code
has the even bits inverted (``0x55``).

Encoding is lossy (about 13-14 bits of dynamic range), decoding is exact: every code maps to one
16-bit value, the middle of its quantization interval, as in the Recommendation's tables.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

Int16Array = NDArray[np.int16]

_ULAW_BIAS_14: Final = 33  # on the 14-bit scale mu-law is defined on
_ULAW_BIAS: Final = _ULAW_BIAS_14 << 2  # the same on the 16-bit scale
_ULAW_MAX_14: Final = 0x1FFF  # the top of the highest segment: louder samples are clipped to it
_ALAW_EVEN_BITS: Final = 0x55


def _segments(magnitude: NDArray[np.int32]) -> NDArray[np.int32]:
    """The segment (0-7) of magnitudes whose top segment starts at 2**14: the position of the
    highest set bit above bit 7, clamped."""
    with np.errstate(divide="ignore"):
        highest = np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32)
    return np.clip(highest - 7, 0, 7)


def ulaw_encode(pcm: Int16Array) -> bytes:
    """16-bit linear samples -> mu-law bytes (one per sample)."""
    samples = np.asarray(pcm, dtype=np.int32)
    negative = samples < 0
    # mu-law codes 14-bit magnitudes (sign and magnitude), biased by 33.
    magnitude = np.where(negative, -(samples >> 2), samples >> 2)
    magnitude = np.minimum(magnitude + _ULAW_BIAS_14, _ULAW_MAX_14)
    segment = _segments(magnitude << 2)
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    code: NDArray[np.int32] = ~(np.where(negative, 0x80, 0) | (segment << 4) | mantissa) & 0xFF
    return code.astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> Int16Array:
    """mu-law bytes -> 16-bit linear samples."""
    code = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    segment = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << segment) - _ULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def alaw_encode(pcm: Int16Array) -> bytes:
    """16-bit linear samples -> A-law bytes (one per sample)."""
    samples = np.asarray(pcm, dtype=np.int32)
    positive = samples >= 0
    magnitude = np.where(positive, samples, ~samples)
    segment = _segments(magnitude)
    shift = np.where(segment == 0, 4, segment + 3)
    mantissa = (magnitude >> shift) & 0x0F
    code = ((segment << 4) | mantissa) ^ np.where(positive, 0x80 | _ALAW_EVEN_BITS, _ALAW_EVEN_BITS)
    return code.astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> Int16Array:
    """A-law bytes -> 16-bit linear samples."""
    code = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ _ALAW_EVEN_BITS
    segment = (code >> 4) & 0x07
    mantissa = code & 0x0F
    step = (mantissa << 4) + 8  # the middle of the interval, segment 0's scale
    magnitude = np.where(segment == 0, step, (step + 0x100) << np.maximum(segment - 1, 0))
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)
