"""Response formats written as they grow (sans-I/O): bytes come out before the end, decode
with PyAV, and the Ogg pages go out at flushes."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from gateway.audio.codecs import OpusOptions
from gateway.audio.containers import ResponseFormat, container_writer, wav_header
from gateway.audio.g711 import alaw_decode, ulaw_decode

RATE = 24000
FRAME = 480


def tone_frames(seconds: float) -> list[bytes]:
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = (0.3 * np.sin(2 * np.pi * 330 * t) * 32767).astype("<i2")
    return [pcm[i : i + FRAME].tobytes() for i in range(0, len(pcm), FRAME)]


def writer(fmt: ResponseFormat):  # type: ignore[no-untyped-def]
    return container_writer(fmt, sample_rate=RATE, bitrate=64000, opus=OpusOptions())


@pytest.mark.parametrize("fmt", list(ResponseFormat))
def test_bytes_stream_out_before_the_end_and_decode(fmt: ResponseFormat) -> None:
    out = writer(fmt)
    frames = tone_frames(2.0)
    early = b"".join(out.write(frame) for frame in frames[: len(frames) // 2])
    assert len(early) > 0, "nothing came out of the first second"
    late = b"".join(out.write(frame) for frame in frames[len(frames) // 2 :])
    data = early + late + out.flush() + out.finish()
    if fmt is ResponseFormat.PCM:
        assert data == b"".join(frames)
        return
    if fmt in (ResponseFormat.ULAW, ResponseFormat.ALAW):  # raw, one byte a sample
        decode = ulaw_decode if fmt is ResponseFormat.ULAW else alaw_decode
        pcm = np.frombuffer(b"".join(frames), "<i2")
        assert len(data) == len(pcm)
        # G.711 keeps about 13 bits: within 4 % of full scale of the original everywhere.
        assert np.max(np.abs(decode(data).astype(np.int32) - pcm)) < 0.04 * 32768
        return
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        rate = stream.rate
    assert abs(samples / rate - 2.0) < 0.1, (fmt, samples, rate)


def test_ogg_pages_go_out_at_a_flush() -> None:
    out = writer(ResponseFormat.OPUS)
    first = out.write(tone_frames(0.02)[0])
    assert first == b""  # one packet: held until a page is due
    paged = out.flush()
    assert paged.startswith(b"OggS")
    assert paged.count(b"OggS") == 3  # OpusHead, OpusTags, the first audio page
    assert out.flush() == b""


def test_wav_says_its_length_is_unknown() -> None:
    header = wav_header(RATE)
    assert len(header) == 44
    assert header[4:8] == header[40:44] == b"\xff\xff\xff\xff"
    out = writer(ResponseFormat.WAV)
    assert out.finish() == header  # an empty answer is still a WAV file
