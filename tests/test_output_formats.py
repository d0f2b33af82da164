"""Output formats: G.711 against FFmpeg's tables, the stream rate chosen per session on
``/v1/stream``, and the REST API's sample rates and telephony formats.

Audio is decoded by PyAV (FFmpeg's own G.711 decoders, MP3 and Opus), never by the gateway's
code, and checked with Whisper where it is speech.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import cast

import av
import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

from gateway.audio.containers import ResponseFormat
from gateway.audio.formats import OutputFormat, parse_output_format
from gateway.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from gateway.core.protocol import Audio, Words
from tests.asr import transcribe, word_error_rate
from tests.conftest import RunningServer, timeout
from tests.streams import check_timeline, collect
from tts_gateway_client import connect

TEXT = "The quick brown fox jumps over the lazy dog. Then it runs home."
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def ffmpeg_decode(codec: str, data: bytes, rate: int) -> NDArray[np.float32]:
    """Raw G.711 (``pcm_mulaw``, ``pcm_alaw``) decoded with FFmpeg's tables, as float."""
    context = cast(av.AudioCodecContext, av.CodecContext.create(codec, "r"))
    context.sample_rate = rate
    context.layout = "mono"
    frames = context.decode(av.Packet(data))
    samples = np.concatenate([frame.to_ndarray()[0] for frame in frames])
    return samples.astype(np.float32) / 32768.0


def decode_file(data: bytes) -> tuple[NDArray[np.float32], int]:
    """A compressed audio file decoded by PyAV: mono float samples and their rate."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts = [
            out.to_ndarray()[0] for f in container.decode(stream) for out in resampler.resample(f)
        ]
    return np.concatenate(parts).astype(np.float32), rate


# -- G.711 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encode", "decode", "codec"),
    [(ulaw_encode, ulaw_decode, "pcm_mulaw"), (alaw_encode, alaw_decode, "pcm_alaw")],
)
def test_g711_decodes_as_ffmpeg_and_encodes_to_the_bracketing_level(
    encode: Callable[[NDArray[np.int16]], bytes],
    decode: Callable[[bytes], NDArray[np.int16]],
    codec: str,
) -> None:
    codes = bytes(range(256))
    levels = decode(codes)
    reference = np.rint(ffmpeg_decode(codec, codes, 8000) * 32768).astype(np.int16)
    assert np.array_equal(levels, reference)
    # Every sample is coded as one of the two levels around it (the decision interval's
    # bounds), and louder samples never get a quieter code.
    decoded = decode(encode(ALL_INT16)).astype(np.int32)
    ordered = np.unique(levels.astype(np.int32))
    above = ordered[np.minimum(np.searchsorted(ordered, ALL_INT16), len(ordered) - 1)]
    below = ordered[np.maximum(np.searchsorted(ordered, ALL_INT16, side="right") - 1, 0)]
    assert np.all((decoded == above) | (decoded == below))
    assert np.all(np.diff(decoded) >= 0)


def test_g711_known_codes() -> None:
    samples = np.array([0, 32767, -32768], dtype=np.int16)
    assert ulaw_encode(samples) == bytes([0xFF, 0x80, 0x00])
    assert alaw_encode(samples) == bytes([0xD5, 0xAA, 0x2A])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pcm_16000", OutputFormat(ResponseFormat.PCM, 16000)),
        ("ulaw_8000", OutputFormat(ResponseFormat.ULAW, 8000)),
        ("alaw_8000", OutputFormat(ResponseFormat.ALAW, 8000)),
        ("mp3_44100_128", OutputFormat(ResponseFormat.MP3, 44100, 128000)),
        ("mp3_22050_32", OutputFormat(ResponseFormat.MP3, 22050, 32000)),
        ("mp3_44100", OutputFormat(ResponseFormat.MP3, 44100, 128000)),
        ("opus_48000_64", OutputFormat(ResponseFormat.OPUS, 48000, 64000)),
    ],
)
def test_elevenlabs_format_names(name: str, expected: OutputFormat) -> None:
    assert parse_output_format(name) == expected


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("wav_24000", "unknown output format"),
        ("pcm", "unknown output format"),
        ("pcm_12345", "pcm is served at 8000, 16000"),
        ("ulaw_16000", "ulaw is served at 8000 Hz"),
        ("pcm_24000_64", "takes no bit rate"),
        ("mp3_44100_999", "8 to 320 kbit/s"),
    ],
)
def test_bad_format_names_say_why(name: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_output_format(name)


# -- /v1/stream ----------------------------------------------------------------------------------


@pytest.mark.model
async def test_a_ulaw_session_at_8_khz_is_speech_after_ffmpegs_decoder(
    server: RunningServer,
) -> None:
    async with connect(server.ws_url, format="ulaw") as stream:
        ready = stream.ready
        assert (ready.format, ready.sample_rate, ready.frame_samples) == ("ulaw", 8000, 160)
        assert (ready.preskip, ready.bitrate) == (0, None)
        stream.feed([TEXT])
        transcript = await collect(stream, deadline_s=timeout(60))
    check_timeline(transcript)
    data = b"".join(frame.data for frame in transcript.of(Audio))
    assert all(len(frame.data) == 160 for frame in transcript.of(Audio))
    pcm = ffmpeg_decode("pcm_mulaw", data, 8000)
    assert 2.0 < len(pcm) / 8000 < 8.0
    heard = transcribe(pcm, 8000)
    assert word_error_rate(TEXT, heard) <= 0.2, heard


@pytest.mark.model
@pytest.mark.parametrize(("fmt", "rate"), [("pcm16", 16000), ("pcm16", 44100), ("opus", 48000)])
async def test_the_timeline_counts_samples_at_the_rate_chosen(
    server: RunningServer, fmt: str, rate: int
) -> None:
    async with connect(server.ws_url, format=fmt, sample_rate=rate) as stream:
        assert stream.ready.sample_rate == rate
        assert stream.ready.frame_samples == rate // 50
        stream.feed(["Hello there. How are you?"])
        transcript = await collect(stream, deadline_s=timeout(60))
    check_timeline(transcript)
    pcm = transcript.pcm()
    words = [word for message in transcript.of(Words) for word in message.words]
    assert [w["text"] for w in words] == ["Hello", "there", "How", "are", "you"]
    # The last word ends before the audio does, at the chosen rate (not at 24 kHz).
    assert 0.6 * len(pcm) < words[-1]["sample_end"] < len(pcm)
    heard = transcribe(pcm, rate)
    assert word_error_rate("Hello there. How are you?", heard) <= 0.2, heard


# -- REST ----------------------------------------------------------------------------------------


async def post_speech(server: RunningServer, body: dict[str, object]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=timeout(60)) as http:
        return await http.post("/v1/audio/speech", json=body)


@pytest.mark.model
@pytest.mark.parametrize(("fmt", "codec"), [("ulaw", "pcm_mulaw"), ("alaw", "pcm_alaw")])
async def test_rest_telephony_formats(server: RunningServer, fmt: str, codec: str) -> None:
    response = await post_speech(
        server, {"input": TEXT, "voice": "jm_kumo", "response_format": fmt}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == ("audio/PCMU" if fmt == "ulaw" else "audio/PCMA")
    pcm = ffmpeg_decode(codec, response.content, 8000)
    heard = transcribe(pcm, 8000)
    assert word_error_rate(TEXT, heard) <= 0.2, heard


@pytest.mark.parametrize(
    ("fmt", "rate"),
    [("pcm", 16000), ("wav", 8000), ("mp3", 44100), ("opus", 16000), ("flac", 48000)],
)
async def test_rest_sample_rates(server: RunningServer, fmt: str, rate: int) -> None:
    text = "One two three. Four five six seven."
    reference = await post_speech(
        server, {"model": "fake", "input": text, "response_format": "pcm"}
    )
    seconds = len(reference.content) / 2 / 24000
    response = await post_speech(
        server, {"model": "fake", "input": text, "response_format": fmt, "sample_rate": rate}
    )
    assert response.status_code == 200, response.text
    if fmt == "pcm":
        pcm, decoded_rate = np.frombuffer(response.content, "<i2").astype(np.float32), rate
    else:
        pcm, decoded_rate = decode_file(response.content)
    assert decoded_rate == (48000 if fmt == "opus" else rate)  # libopus decodes at 48 kHz
    assert abs(len(pcm) / decoded_rate - seconds) < 0.1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"response_format": "ulaw", "sample_rate": 16000}, "one of 8000 for ulaw"),
        ({"response_format": "opus", "sample_rate": 44100}, "8000, 12000, 16000, 24000, 48000"),
        ({"sample_rate": "16000"}, "'sample_rate' must be one of"),
    ],
)
async def test_rest_refuses_a_rate_its_format_does_not_take(
    server: RunningServer, body: dict[str, object], says: str
) -> None:
    response = await post_speech(server, {"model": "fake", "input": "Hi.", **body})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "sample_rate"
    assert says in error["message"]
