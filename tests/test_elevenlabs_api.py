"""The ElevenLabs-compatible WebSockets with a client written from ElevenLabs' API reference
(tests/elevenlabs_client.py), against a real gateway on loopback: real Kokoro for speech
(checked with Whisper), the tone backend where a test needs speed, a hang or a failure.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import re
from collections.abc import AsyncIterator, Callable

import av
import numpy as np
import pytest
from numpy.typing import NDArray
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gateway.backends.base import SynthesisRequest
from gateway.backends.elevenlabs import ElevenLabsBackend
from gateway.backends.settings import ElevenLabsSettings
from gateway.config import AuthRequired
from tests.asr import transcribe, word_error_rate
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.elevenlabs_client import Received, XiClient, xi_connect, xi_url
from tests.fakes import HANG_MARKER, RAISE_MARKER, ToneBackend
from tests.servers import eventually
from tests.test_output_formats import ffmpeg_decode

FIRST = ("The first context speaks a long passage about the weather on the coast. "
         "It goes on with sentence after sentence, so that it can be cut off. "
         "Nobody hears the end of this one.")  # fmt: skip
SECOND = "The second context says hello to everyone. It keeps on talking calmly."


def pcm16(data: bytes | bytearray) -> NDArray[np.float32]:
    return np.frombuffer(bytes(data), "<i2").astype(np.float32) / 32768.0


def words_of(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text)


def finished(*contexts: str | None) -> Callable[[XiClient], bool]:
    return lambda client: all(client.of(c).finals for c in contexts)


def check_alignment_clock(received: Received, sample_rate: int) -> None:
    """Message times add up to the audio (each message's last start plus duration, from the end
    of the previous alignment), and the context times are that clock plus the message times.
    The clock reaches the end of the last message that carries characters: what follows (the
    silence after the last word) has none to time."""
    clock = 0
    aligned_bytes = 0  # the audio up to the end of the last message with characters
    audio_bytes = 0
    for message in received.messages:
        audio_bytes += len(base64.b64decode(message["audio"]))
        alignment, normalized = message["alignment"], message["normalizedAlignment"]
        assert (alignment is None) == (normalized is None)
        if alignment is None:
            continue
        starts, durations = alignment["charStartTimesMs"], alignment["charDurationsMs"]
        assert len(alignment["chars"]) == len(starts) == len(durations)
        assert normalized["charStartTimesMs"] == [clock + s for s in starts]
        assert all(d >= 0 for d in durations)
        clock += starts[-1] + durations[-1]
        aligned_bytes = audio_bytes
    assert clock == round(aligned_bytes / 2 * 1000 / sample_rate)


# -- multi-stream-input ------------------------------------------------------------------------


@pytest.mark.model
async def test_two_contexts_interleaved_one_interrupted_nothing_lost_in_the_other(
    server: RunningServer,
) -> None:
    url = xi_url(server, "21m00Tcm4TlvDq8ikWAM", model_id="eleven_flash_v2_5",
                 output_format="pcm_24000")  # fmt: skip
    async with xi_connect(url, additional_headers={"xi-api-key": "any key"}) as client:
        await client.send(text=" ", context_id="a", voice_settings={"stability": 0.5})
        await client.send(text=" ", context_id="b")
        first, second = words_of(FIRST), words_of(SECOND)
        for i in range(max(len(first), len(second))):  # tokens of two replies, interleaved
            if i < len(first):
                await client.send(text=first[i], context_id="a", flush=i == len(first) - 1)
            if i < len(second):
                await client.send(text=second[i], context_id="b")
        await client.send(context_id="b", flush=True)  # b's input ends: a bare flush
        await client.read_until(lambda c: len(c.of("a").audio) >= 2 * 24000 // 2)
        await client.send(context_id="a", close_context=True)  # a is interrupted mid-speech
        await client.send(context_id="b", close_context=True)  # b speaks to its end
        await client.read_until(finished("a", "b"))
        a_audio_at_final = len(client.of("a").audio)
        await client.send(close_socket=True)
        await client.read_until(lambda _: False)
    assert client.close_code == 1000
    assert not client.errors
    a, b = client.of("a"), client.of("b")
    assert a.finals == b.finals == 1
    assert a.audio_after_final == b.audio_after_final == 0
    assert len(a.audio) == a_audio_at_final
    assert len(a.audio) / 2 / 24000 < 0.8 * len(FIRST) / 14  # far from all of it
    assert b.chars() == SECOND
    assert b.chars("normalizedAlignment") == SECOND
    check_alignment_clock(b, 24000)
    heard = transcribe(pcm16(b.audio), 24000)
    assert word_error_rate(SECOND, heard) <= 0.15, heard


async def test_a_context_is_stopped_at_once_and_the_others_go_on(
    server: RunningServer, tone: ToneBackend
) -> None:
    """close_context after text interrupts: the hanging synthesis is cancelled, isFinal comes
    at once, and the socket's other contexts keep working."""
    url = xi_url(server, "tone", model_id="fake", output_format="pcm_24000", auto_mode="true")
    async with xi_connect(url) as client:
        await client.send(text=f"Hello there, {HANG_MARKER} forever.", context_id="stuck")
        await eventually(lambda: tone.active > 0, deadline_s=timeout(10))
        await client.read_until(lambda c: bool(c.of("stuck").audio))  # "Hello there," spoke
        await client.send(context_id="stuck", close_context=True)
        await client.read_until(finished("stuck"), deadline_s=10)
        await eventually(lambda: tone.active == 0, deadline_s=timeout(10))
        await client.send(text="One two three.", context_id="fine")
        await client.send(context_id="fine", flush=True)
        await client.send(context_id="fine", close_context=True)
        await client.read_until(finished("fine"))
    assert client.of("fine").chars() == "One two three. "
    assert not client.errors


async def test_a_client_that_goes_away_stops_every_context(
    server: RunningServer, tone: ToneBackend
) -> None:
    url = xi_url(server, "tone", model_id="fake", output_format="pcm_24000", auto_mode="true")
    async with xi_connect(url) as client:
        for name in ("x", "y"):
            await client.send(text=f"Speaking, {HANG_MARKER} for ever.", context_id=name)
        await eventually(lambda: tone.active >= 2, deadline_s=timeout(10))
        await client.read_until(lambda c: bool(c.of("x").audio and c.of("y").audio))
    # The socket is gone: both syntheses are cancelled and the session ends.
    await eventually(lambda: tone.active == 0, deadline_s=timeout(10))
    await eventually(lambda: not server.gateway.sessions, deadline_s=timeout(10))


async def test_limits_and_refusals_keep_the_socket_serving(server: RunningServer) -> None:
    url = xi_url(server, "tone", model_id="fake", output_format="pcm_16000")
    async with xi_connect(url) as client:
        await client.socket.send("not json")
        await client.send(text=5, context_id="x")
        await client.send(context_id="ghost", close_context=True)  # unknown: ignored
        for name in ("k1", "k2", "k3", "k4", "k5", "k6"):  # keep-alives open nothing
            await client.send(text="", context_id=name)
        await client.read_until(lambda c: len(c.errors) == 2, deadline_s=10)
        assert [e["error"] for e in client.errors] == ["invalid_input_message"] * 2
        assert "Could not parse input message" in client.errors[0]["message"]
        for index in range(5):
            await client.send(text=" ", context_id=f"c{index}")
        await client.send(text="One.", context_id="c0", flush=True)
        await client.send(context_id="c0", flush=True)
        await client.send(context_id="c0", close_context=True)  # frees its slot at once
        await client.send(text=" ", context_id="c5")
        await client.send(text="Two.", context_id="c5", flush=True)
        await client.read_until(lambda c: bool(c.of("c5").audio) and c.of("c0").finals > 0)
        await client.send(text=" ", context_id="c6")  # a sixth open context
        await client.read_until(lambda _: False)
    assert client.close_code == 1008
    assert client.errors[-1] == {
        "message": "Maximum simultaneous contexts per WebSocket connection exceeded (5). "
                   "Please close an existing context before opening a new one.",
        "error": "max_active_conversations", "code": 1008, "contextId": "c6",
    }  # fmt: skip
    assert client.of("c0").chars() == "One."
    assert client.of("c0").finals == 1


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("nobody/multi-stream-input", 404, "voice_not_found"),
        ("tone/multi-stream-input?model_id=fake&output_format=wav_24000", 422,
         "invalid_output_format"),
        ("tone/stream-input?model_id=fake&apply_text_normalization=off", 422,
         "unsupported_feature"),
        ("tone/stream-input?model_id=fake&language_code=ja", 422, "unsupported_language"),
        ("tone/stream-input?model_id=fake&inactivity_timeout=999", 422, "invalid_parameters"),
    ],
)  # fmt: skip
async def test_handshake_refusals_have_the_services_error_shape(
    server: RunningServer, path: str, status: int, code: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{server.port}/v1/text-to-speech/{path}"):
            pass
    response = refused.value.response
    assert response.status_code == status
    detail = json.loads(response.body or b"")["detail"]
    assert detail["status"] == code
    if code == "voice_not_found":
        assert detail["message"].startswith("A voice with the voice_id nobody was not found.")


async def test_a_backend_failure_is_an_error_for_its_context(server: RunningServer) -> None:
    url = xi_url(server, "tone", model_id="fake", output_format="pcm_24000", auto_mode="true")
    async with xi_connect(url) as client:
        await client.send(text=f"Fine words. Then {RAISE_MARKER} here.", context_id="f")
        await client.send(context_id="f", flush=True)
        await client.send(context_id="f", close_context=True)
        await client.read_until(finished("f"))
    (error,) = client.errors
    assert (error["error"], error["contextId"]) == ("backend_error", "f")
    # The failed sentence's characters go out only as far as its audio did (none of its last
    # words): the rest of it is reported by the error, never as spoken.
    chars = client.of("f").chars()
    assert chars.startswith("Fine words. ")
    assert RAISE_MARKER not in chars
    assert "here" not in chars


# -- stream-input and formats ------------------------------------------------------------------


async def speak_single(url: str, text: str, **opening: object) -> XiClient:
    """The documented stream-input exchange: opening " ", pieces, then "" to end."""
    async with xi_connect(url) as client:
        await client.send(text=" ", **opening)
        for piece in words_of(text):
            await client.send(text=piece, try_trigger_generation=True)
        await client.send(text="")
        await client.read_until(lambda _: False)
    return client


@pytest.mark.model
async def test_stream_input_ulaw_8000_is_speech_after_the_g711_table(server: RunningServer) -> None:
    text = "Your table for two is booked for seven thirty tonight."
    url = xi_url(server, "pNInz6obpgDQGcFmaJgB", "stream-input", output_format="ulaw_8000")
    client = await speak_single(url, text, xi_api_key="any key")
    assert client.close_code == 1000
    received = client.of(None)
    assert received.finals == 1
    assert received.chars().strip() == text
    pcm = ffmpeg_decode("pcm_mulaw", bytes(received.audio), 8000)
    heard = transcribe(pcm, 8000)
    assert word_error_rate(text, heard) <= 0.2, heard


@pytest.mark.parametrize(
    ("output_format", "rate"),
    [("pcm_16000", 16000), ("mp3_44100_128", 44100), ("mp3_22050_32", 22050),
     ("opus_48000_64", 48000), ("alaw_8000", 8000)],
)  # fmt: skip
async def test_output_formats(server: RunningServer, output_format: str, rate: int) -> None:
    text = "One two three. Four five six seven."
    url = xi_url(server, "tone", "stream-input", model_id="fake", output_format=output_format)
    client = await speak_single(url, text)
    received = client.of(None)
    data = bytes(received.audio)
    if output_format.startswith("pcm"):
        pcm, decoded_rate = pcm16(data), rate
    elif output_format.startswith("alaw"):
        pcm, decoded_rate = ffmpeg_decode("pcm_alaw", data, rate), rate
    else:
        with av.open(io.BytesIO(data), "r") as container:
            stream = container.streams.audio[0]
            decoded_rate = stream.rate
            pcm = np.concatenate([f.to_ndarray()[0] for f in container.decode(stream)])
    assert decoded_rate == rate
    tones = 7 * 0.12  # the tone backend: 120 ms a word, plus seams and pauses
    assert tones < len(pcm) / rate < tones + 2.0
    assert received.chars().strip() == text


async def test_enable_ssml_parsing_reads_the_markup_and_never_speaks_it(
    server: RunningServer,
) -> None:
    plain, marked = "One two three.", 'One <break time="500ms"/>two <sub alias="three">3</sub>.'
    options = {"model_id": "fake", "output_format": "pcm_24000"}
    as_text = (await speak_single(xi_url(server, "tone", "stream-input", **options), plain)).of()
    url = xi_url(server, "tone", "stream-input", enable_ssml_parsing="true", **options)
    client = await speak_single(url, marked)
    as_ssml = client.of(None)
    assert (client.errors, as_ssml.finals) == ([], 1)
    # The same three words (the tone backend: one tone a word), and the break's half second.
    longer_s = (len(as_ssml.audio) - len(as_text.audio)) / 2 / 24000
    assert 0.45 <= longer_s <= 0.8, longer_s  # plus a seam at the break
    spoken = [c for a in as_ssml.alignments() for c, d in zip(a["chars"], a["charDurationsMs"],
              strict=True) if d > 0]  # fmt: skip
    assert not {"<", ">", "/"} & set(spoken)  # markup is never given sound


async def test_stream_input_inactivity_ends_with_the_services_error(server: RunningServer) -> None:
    url = xi_url(server, "tone", "stream-input", model_id="fake", inactivity_timeout="1")
    async with xi_connect(url) as client:
        await client.send(text=" ")
        await client.send(text="Waiting ")
        await client.read_until(lambda _: False, deadline_s=30)
    assert client.close_code == 1008
    assert client.errors[-1]["error"] == "input_timeout_exceeded"
    assert "within the timeout of 1 seconds" in client.errors[-1]["message"]


async def test_close_socket_lets_a_context_whose_input_ended_finish(server: RunningServer) -> None:
    url = xi_url(server, "tone", model_id="fake", output_format="pcm_24000")
    async with xi_connect(url) as client:
        await client.send(text="One two three four five six.", context_id="done", flush=True)
        await client.send(context_id="done", flush=True)  # its input ended
        await client.send(text="Seven eight nine ten.", context_id="cut", flush=True)
        await client.send(close_socket=True)
        await client.read_until(lambda _: False)
    assert client.close_code == 1000
    assert client.of("done").chars() == "One two three four five six."
    assert client.of("done").finals == client.of("cut").finals == 1
    assert client.of("cut").chars() != "Seven eight nine ten."  # stopped, not drained


# -- authentication, shutdown, the gateway's own ElevenLabs client -------------------------------

KEY = "elevenlabs-test-key-0123456789"


@pytest.fixture
async def keyed(tone: ToneBackend) -> AsyncIterator[RunningServer]:
    config = repo_config()
    auth = dataclasses.replace(config.auth, required=AuthRequired.YES, api_keys=(KEY,))
    running = await serve(dataclasses.replace(config, auth=auth), {"kokoro": tone})
    yield running
    await running.stop()


async def test_the_key_from_the_header_or_the_first_message(keyed: RunningServer) -> None:
    url = xi_url(keyed, "tone", "stream-input", output_format="pcm_16000")
    with pytest.raises(InvalidStatus) as refused:
        async with xi_connect(url, additional_headers={"xi-api-key": "wrong key"}):
            pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body or b"")["detail"]["status"] == "invalid_api_key"
    client = await speak_single(url, "Hello.", xi_api_key=KEY)
    assert client.of(None).chars() == "Hello."
    async with xi_connect(url, additional_headers={"xi-api-key": KEY}) as client:
        await client.send(text="Hi there.")
        await client.send(text="")
        await client.read_until(lambda _: False)
    assert client.close_code == 1000
    async with xi_connect(url) as client:
        await client.send(text=" ")  # no key in the first message
        await client.read_until(lambda _: False)
    assert client.close_code == 1008
    assert client.errors[-1]["error"] == "invalid_api_key"


async def test_shutdown_reports_what_will_not_be_spoken() -> None:
    tone = ToneBackend("kokoro", chunk_delay_s=0.05)
    running = await serve(repo_config(), {"kokoro": tone})
    url = xi_url(running, "tone", output_format="pcm_24000", auto_mode="true")
    async with xi_connect(url) as client:
        await client.send(text="One two three four five six seven eight nine.", context_id="s")
        await client.send(text="Ten eleven twelve thirteen fourteen.", context_id="s")
        await client.read_until(lambda c: bool(c.of("s").audio))
        stopping = asyncio.create_task(running.stop())
        await client.read_until(lambda _: False)
        await stopping
    assert client.close_code == 1001
    (error,) = client.errors
    assert (error["error"], error["contextId"]) == ("shutting_down", "s")
    assert client.of("s").finals == 1


@pytest.mark.model
async def test_the_gateways_own_elevenlabs_backend_speaks_through_stream_input(
    server: RunningServer,
) -> None:
    """The gateway's ``elevenlabs`` backend (a stream-input client written against the
    service) pointed at the gateway: speech with word timings from the alignment."""
    settings = ElevenLabsSettings(base_url=server.http_url, api_key="any key",
                                  default_voice="jm_kumo")  # fmt: skip
    backend = ElevenLabsBackend("elevenlabs", settings)
    await backend.load()
    text = "Good evening. The last train leaves at ten."
    try:
        request = SynthesisRequest(text, "jm_kumo", "en-us", 1.0)
        chunks = [chunk async for chunk in backend.synthesize(request)]
    finally:
        await backend.aclose()
    assert "jf_alpha" in [voice.id for voice in backend.voices()]
    pcm = np.concatenate([chunk.pcm for chunk in chunks])
    words = [text[w.char_start : w.char_end] for chunk in chunks for w in chunk.words]
    assert words == ["Good", "evening", "The", "last", "train", "leaves", "at", "ten"]
    heard = transcribe(pcm, backend.sample_rate)
    assert word_error_rate(text, heard) <= 0.15, heard
