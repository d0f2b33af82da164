"""Which sample rates each output format takes, and output formats named the ElevenLabs way.

A stream runs at one sample rate from the backend to the encoder: a backend's audio is resampled
once, to the rate of the format the client chose (:mod:`gateway.audio.resample`), and the
session's timeline counts samples at that rate. The rates here are the ones each codec encodes
natively (libopus: 8, 12, 16, 24, 48 kHz; libmp3lame: the MPEG-1/2/2.5 rates; G.711: 8 kHz).

ElevenLabs names a format ``<codec>_<rate>[_<kbit/s>]``: ``pcm_16000``, ``ulaw_8000``,
``mp3_44100_128``, ``opus_48000_64``. :func:`parse_output_format` reads these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.audio.containers import ResponseFormat
from gateway.core.protocol import AudioFormat

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "FILE_RATES",
    "FRAME_RATES",
    "OutputFormat",
    "default_rate",
    "parse_output_format",
]

DEFAULT_SAMPLE_RATE: Final = 24000
PCM_RATES: Final = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
OPUS_RATES: Final = (8000, 12000, 16000, 24000, 48000)
TELEPHONY_RATES: Final = (8000,)

# The rates of each frame format of /v1/stream.
FRAME_RATES: Final[dict[AudioFormat, tuple[int, ...]]] = {
    AudioFormat.OPUS: OPUS_RATES,
    AudioFormat.PCM16: PCM_RATES,
    AudioFormat.ULAW: TELEPHONY_RATES,
    AudioFormat.ALAW: TELEPHONY_RATES,
}
# The rates of each file format of the REST API.
FILE_RATES: Final[dict[ResponseFormat, tuple[int, ...]]] = {
    ResponseFormat.MP3: PCM_RATES,
    ResponseFormat.OPUS: OPUS_RATES,
    ResponseFormat.AAC: PCM_RATES,
    ResponseFormat.FLAC: PCM_RATES,
    ResponseFormat.WAV: PCM_RATES,
    ResponseFormat.PCM: PCM_RATES,
    ResponseFormat.ULAW: TELEPHONY_RATES,
    ResponseFormat.ALAW: TELEPHONY_RATES,
}
# kbit/s an MP3 or Opus stream may ask for; ElevenLabs' default MP3 is 128 kbit/s.
_BITRATES_KBPS: Final = range(8, 321)
_DEFAULT_MP3_KBPS: Final = 128
_DEFAULT_OPUS_KBPS: Final = 64
_CODECS: Final = {
    "pcm": ResponseFormat.PCM,
    "ulaw": ResponseFormat.ULAW,
    "alaw": ResponseFormat.ALAW,
    "mp3": ResponseFormat.MP3,
    "opus": ResponseFormat.OPUS,
}


def default_rate(rates: tuple[int, ...]) -> int:
    """The gateway's default rate if the format takes it, else the format's first."""
    return DEFAULT_SAMPLE_RATE if DEFAULT_SAMPLE_RATE in rates else rates[0]


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """An audio stream's encoding: its file format (``pcm``, ``ulaw`` and ``alaw`` are raw
    samples), sample rate (Hz) and, for MP3 and Opus, bit rate (bit/s)."""

    container: ResponseFormat
    sample_rate: int
    bitrate: int | None = None

    @property
    def name(self) -> str:
        """The ElevenLabs name, e.g. ``mp3_44100_128``."""
        kbps = "" if self.bitrate is None else f"_{self.bitrate // 1000}"
        return f"{self.container.value}_{self.sample_rate}{kbps}"


def parse_output_format(name: str) -> OutputFormat:
    """An ElevenLabs-style format name; ValueError says what is wrong with it."""
    codec, *numbers = name.split("_")
    container = _CODECS.get(codec)
    if container is None or not 1 <= len(numbers) <= 2 or not all(n.isdigit() for n in numbers):
        raise ValueError(
            f"unknown output format {name!r}: expected <codec>_<sample rate>[_<kbit/s>] with "
            f"a codec of {', '.join(_CODECS)}, e.g. pcm_24000, ulaw_8000, mp3_44100_128"
        )
    rate = int(numbers[0])
    rates = FILE_RATES[container]
    if rate not in rates:
        raise ValueError(
            f"output format {name!r}: {codec} is served at {', '.join(map(str, rates))} Hz"
        )
    if container not in (ResponseFormat.MP3, ResponseFormat.OPUS):
        if len(numbers) > 1:
            raise ValueError(f"output format {name!r}: {codec} takes no bit rate")
        return OutputFormat(container, rate)
    default = _DEFAULT_MP3_KBPS if container is ResponseFormat.MP3 else _DEFAULT_OPUS_KBPS
    kbps = int(numbers[1]) if len(numbers) > 1 else default
    if kbps not in _BITRATES_KBPS:
        raise ValueError(f"output format {name!r}: the bit rate must be 8 to 320 kbit/s")
    return OutputFormat(container, rate, kbps * 1000)
