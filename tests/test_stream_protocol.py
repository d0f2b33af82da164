"""The /v1/stream protocol against a real server: bad input, flush, cancel, faults, shutdown.

These use the tone backend (fast, deterministic, fault-injecting) next to the real Kokoro one;
tests/test_stream_kokoro.py covers the same paths with real speech.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from gateway.config import LimitsSettings, SessionSettings
from gateway.core.protocol import (
    Audio,
    Cancelled,
    Error,
    Flushed,
    Ready,
    ServerMessage,
    decode_server_message,
)
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.fakes import HANG_MARKER, RAISE_MARKER, ToneBackend
from tests.streams import check_segments_cover, check_timeline, collect, errors
from tts_gateway_client import ClientError, SpeechStream, connect


@pytest.fixture
async def raw(server: RunningServer) -> AsyncIterator[ClientConnection]:
    async with ws_connect(server.ws_url, compression=None) as socket:
        yield socket


async def send(socket: ClientConnection, body: object) -> None:
    await socket.send(msgpack.packb(body))


async def receive(socket: ClientConnection) -> ServerMessage:
    async with asyncio.timeout(timeout(10)):
        frame = await socket.recv()
    assert isinstance(frame, bytes)
    return decode_server_message(frame)


async def expect_error(socket: ClientConnection, code: str, words: str) -> Error:
    message = await receive(socket)
    assert isinstance(message, Error), message
    assert message.code == code, message
    assert words in message.message
    assert not message.fatal
    return message


async def test_bad_input_gets_clear_errors_and_the_session_survives(
    raw: ClientConnection,
) -> None:
    await raw.send(b"\xc1\xc1garbage")
    await expect_error(raw, "invalid_message", "not one valid msgpack")
    await raw.send(bytes(range(200)))
    await expect_error(raw, "invalid_message", "msgpack")
    await raw.send("a text frame")
    await expect_error(raw, "invalid_message", "binary frames")
    await send(raw, [1, 2, 3])
    await expect_error(raw, "invalid_message", "must be a msgpack map")
    await send(raw, {"type": "speak", "text": "hi"})
    await expect_error(raw, "unknown_type", "'speak'")
    await send(raw, {"type": "text", "text": "too early"})
    await expect_error(raw, "not_started", "send start first")
    await send(raw, {"type": "flush"})
    await expect_error(raw, "not_started", "send start first")
    await send(raw, {"type": "cancel"})
    await expect_error(raw, "not_started", "nothing to cancel")
    await send(raw, {"type": "start", "speed": "fast"})
    await expect_error(raw, "invalid_field", "start.speed")
    await send(raw, {"type": "start", "backend": "nope"})
    await expect_error(raw, "unknown_backend", "available: kokoro, fake")
    await send(raw, {"type": "start", "backend": "fake", "voice": "nobody"})
    await expect_error(raw, "unknown_voice", "voices: tone, tone2")
    await send(raw, {"type": "start", "backend": "fake", "lang": "tlh"})
    await expect_error(raw, "unsupported_language", "'tlh'")
    await send(raw, {"type": "start", "backend": "fake", "sample_rate": 22050})
    await expect_error(raw, "invalid_field", "opus streams at 8000, 12000, 16000, 24000, 48000 Hz")
    await send(raw, {"type": "start", "backend": "fake", "format": "ulaw", "sample_rate": 24000})
    await expect_error(raw, "invalid_field", "ulaw streams at 8000 Hz")
    await send(raw, {"type": "start", "backend": "fake", "format": "pcm16",
                     "sample_rate": 22050, "frame_ms": 10})  # fmt: skip
    await expect_error(raw, "invalid_field", "10 ms is not a whole number of samples")
    # After all of that, a valid start still works on the same socket.
    await send(raw, {"type": "start", "backend": "fake"})
    ready = await receive(raw)
    assert isinstance(ready, Ready)
    assert ready.backend == "fake"
    await send(raw, {"type": "start", "backend": "fake"})
    await expect_error(raw, "already_started", "already started")
    await send(raw, {"type": "text", "text": 7})
    await expect_error(raw, "invalid_field", "text.text must be a string")
    await send(raw, {"type": "flush", "id": [1]})
    assert (await expect_error(raw, "invalid_field", "flush.id")).ref == "flush"
    await send(raw, {"type": "start"})
    assert (await expect_error(raw, "already_started", "already")).ref == "start"
    await send(raw, {"type": "text", "text": "Hello there."})
    await send(raw, {"type": "end"})
    await send(raw, {"type": "text", "text": "late"})
    kinds = []
    while True:
        try:
            message = await receive(raw)
        except ConnectionClosed:
            break
        kinds.append(message.TYPE)
        if isinstance(message, Error):
            assert message.code == "ended"
    assert "error" in kinds
    assert kinds[-1] == "done"
    assert raw.close_code == 1000


async def test_oversized_message_closes_with_1009(raw: ClientConnection) -> None:
    await send(raw, {"type": "start", "backend": "fake"})
    assert isinstance(await receive(raw), Ready)
    await send(raw, {"type": "text", "text": "x" * 70000})
    with pytest.raises(ConnectionClosed):
        await receive(raw)
    assert raw.close_code == 1009


async def test_other_sessions_keep_working_next_to_a_bad_one(server: RunningServer) -> None:
    async def good() -> None:
        async with connect(server.ws_url, backend="fake") as stream:
            stream.feed(["One two three. ", "Four five."])
            transcript = await collect(stream, deadline_s=timeout(20))
        assert transcript.done is not None
        assert not errors(transcript)

    async def bad() -> None:
        async with ws_connect(server.ws_url, compression=None) as socket:
            for _ in range(20):
                await socket.send(b"\xc1")
            for _ in range(20):
                await expect_error(socket, "invalid_message", "msgpack")
            await socket.send(b"\x00" * 70000)
            with pytest.raises(ConnectionClosed):
                await receive(socket)

    await asyncio.gather(good(), bad(), good())


async def test_flush_cancel_and_end_order(server: RunningServer) -> None:
    async with connect(server.ws_url, backend="fake") as stream:
        await stream.send_text("one two")
        await stream.flush(1)
        part = await collect(stream, until=Flushed, deadline_s=timeout(10))
        assert [s.text for s in part.segments] == ["one two"]
        assert part.messages[-1] == Flushed(1, len(part.audio) * 480)
        await stream.send_text(" three four. five")
        await stream.end()
        rest = await collect(stream, deadline_s=timeout(10))
    assert [s.text for s in rest.segments] == [" three four.", " five"]
    whole = dataclasses.replace(part, messages=part.messages + rest.messages)
    check_timeline(whole)
    check_segments_cover(whole.segments, "one two three four. five")
    assert stream.close_code == 1000


async def test_backend_failure_is_reported_and_the_session_continues(
    server: RunningServer,
) -> None:
    text = f"Before it. Then {RAISE_MARKER} here. After it."
    async with connect(server.ws_url, backend="fake") as stream:
        stream.feed([text])
        transcript = await collect(stream, deadline_s=timeout(10))
    failure = errors(transcript)
    assert len(failure) == 1
    assert failure[0].code == "backend_error"
    assert "injected failure" in failure[0].message
    assert not failure[0].fatal
    assert failure[0].char_start is not None
    assert failure[0].char_end is not None
    assert text[failure[0].char_start : failure[0].char_end] == f" Then {RAISE_MARKER} here."
    assert [s.text for s in transcript.segments][-1] == " After it."
    done = transcript.done
    assert done is not None
    assert done.metrics["chars_unspoken"] == len(f" Then {RAISE_MARKER} here.")
    assert done.metrics["chars_spoken"] + done.metrics["chars_unspoken"] == len(text)
    check_timeline(transcript)


async def test_cancel_of_a_hanging_backend_is_prompt(
    server: RunningServer, tone: ToneBackend
) -> None:
    async with connect(server.ws_url, backend="fake") as stream:
        baseline = len(asyncio.all_tasks())
        await stream.send_text(f"Start {HANG_MARKER} forever. Queued text. And more")
        await stream.flush("never")
        await asyncio.sleep(0.2)
        assert tone.active == 1
        await stream.cancel("stop")
        transcript = await collect(stream, until=Cancelled, deadline_s=timeout(5))
        # Acknowledged only once the backend's work has stopped: nothing left running.
        assert tone.active == 0
        assert len(asyncio.all_tasks()) == baseline
        flushed, cancelled = transcript.messages[-2:]
        assert flushed == Flushed("never", cancelled.sample_end, cancelled=True)  # type: ignore[union-attr]
        assert isinstance(cancelled, Cancelled)
        assert cancelled.id == "stop"
        assert cancelled.unspoken_start == 0
        assert cancelled.unspoken_text == f"Start {HANG_MARKER} forever. Queued text. And more"
        await stream.send_text("Next turn.")
        await stream.end()
        rest = await collect(stream, deadline_s=timeout(10))
    assert [s.text for s in rest.segments] == ["Next turn."]
    assert rest.segments[0].char_start == len(cancelled.unspoken_text)
    assert rest.audio
    assert rest.done is not None


async def test_pending_text_limit_closes_with_1008_and_reports_the_unspoken_text() -> None:
    limits = dataclasses.replace(LimitsSettings(), max_pending_chars=50)
    served = await serve(
        repo_config(limits=limits), {"kokoro": ToneBackend("kokoro", chunk_delay_s=0.2)}
    )
    try:
        async with connect(served.ws_url) as stream:
            await stream.send_text("a" * 40)
            await stream.send_text("b" * 20)  # 60 > 50: refused, and the session ends
            transcript = await collect(stream, deadline_s=timeout(10))  # until the close
            assert stream.close_code == 1008
            (refused,) = errors(transcript)
    finally:
        await served.stop()
    assert refused.code == "pending_text_limit"
    assert refused.fatal
    assert "limit is 50" in refused.message
    assert (refused.char_start, refused.char_end) == (0, 40)  # the accepted text, not spoken


async def test_idle_text_is_released_after_max_buffer_delay() -> None:
    session = dataclasses.replace(SessionSettings(), max_buffer_delay_ms=200)
    served = await serve(repo_config(session=session), {"kokoro": ToneBackend("kokoro")})
    try:
        async with connect(served.ws_url) as stream:
            await stream.send_text("an unfinished thought")
            transcript = await collect(stream, until=Audio, deadline_s=timeout(5))
            await stream.end()
    finally:
        await served.stop()
    segment = transcript.segments[0]
    assert segment.text == "an unfinished thought"
    assert segment.released_by == "idle"


async def test_client_that_leaves_mid_stream_is_cleaned_up(
    server: RunningServer, tone: ToneBackend
) -> None:
    async with connect(server.ws_url, backend="fake") as stream:
        await stream.send_text(f"Talking {HANG_MARKER} now.")
        await stream.flush()
        await asyncio.sleep(0.2)
        assert tone.active == 1
    await eventually(lambda: not tone.active and not server.gateway.sessions)


async def test_shutdown_closes_live_sessions_with_1001() -> None:
    served = await serve(repo_config(), {"kokoro": ToneBackend("kokoro")})
    async with connect(served.ws_url) as stream:
        await stream.send_text(f"Talking {HANG_MARKER} now.")
        await stream.flush()
        await asyncio.sleep(0.1)
        await served.stop()
        with pytest.raises(ConnectionClosed):
            await drain(stream)
        assert stream.close_code == 1001


async def drain(stream: SpeechStream) -> None:
    """Read until the socket closes (raises ConnectionClosed)."""
    async with asyncio.timeout(timeout(5)):
        while True:
            await stream.receive()


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds, polling (the server's state has no event to wait on)."""
    async with asyncio.timeout(timeout(5)):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_connect_reports_an_unreachable_gateway() -> None:
    with pytest.raises(ClientError, match="cannot reach the gateway"):
        async with connect("ws://127.0.0.1:9/v1/stream", open_timeout_s=2):
            pass


async def test_connect_reports_a_refused_start(server: RunningServer) -> None:
    with pytest.raises(ClientError, match="unknown_voice"):
        async with connect(server.ws_url, voice="nobody"):
            pass


async def test_cancel_with_a_client_that_does_not_read_keeps_the_timeline_whole(
    server: RunningServer,
) -> None:
    """The speaker is cancelled while blocked on a full socket: no frame may go missing."""
    text = " ".join(["Words keep coming here."] * 400)  # minutes of PCM16: megabytes
    async with connect(server.ws_url, backend="fake", format="pcm16", max_queue=4) as stream:
        await stream.send_text(text)
        await stream.flush("all")
        await asyncio.sleep(1.0)  # the server fills the socket and blocks
        await stream.cancel("now")
        transcript = await collect(stream, until=Cancelled, deadline_s=timeout(60))
    check_timeline(transcript)  # contiguous seq and sample positions, acks after their audio
    flushed, cancelled = transcript.messages[-2:]
    assert isinstance(flushed, Flushed)
    assert flushed.cancelled
    assert isinstance(cancelled, Cancelled)
    assert cancelled.unspoken_end == len(text)
    assert 0 < cancelled.unspoken_start < len(text)
    assert cancelled.sample_end == len(transcript.audio) * transcript.ready.frame_samples


async def test_the_client_skips_message_types_it_does_not_know() -> None:
    import msgpack as mp

    from tts_gateway_client.client import SpeechStream

    class FakeSocket:
        def __init__(self) -> None:
            self.frames: list[bytes] = [
                mp.packb({"type": "from_the_future", "x": 1}),
                mp.packb({"type": "segment_end", "segment": 0, "sample_end": 1, "synthesis_ms": 0}),
            ]

        async def recv(self) -> bytes:
            return self.frames.pop(0)

    ready = Ready(1, "s", "b", "v", "en-us", 1.0, "opus", 24000, 1, 480, 32000, 156, 1, 1)
    stream = SpeechStream(FakeSocket(), ready)  # type: ignore[arg-type]
    assert (await stream.receive()).TYPE == "segment_end"


async def test_health_is_503_until_the_backend_is_loaded() -> None:
    import httpx

    gate = asyncio.Event()
    served = await serve(
        repo_config(), {"kokoro": ToneBackend("kokoro", load_gate=gate)}, wait_ready=False
    )
    try:
        async with httpx.AsyncClient(base_url=served.http_url) as http:
            loading = await http.get("/healthz")
            assert loading.status_code == 503
            body = loading.json()
            assert body.pop("load")["queued"] == 0
            assert body == {
                "status": "unavailable",
                "backends": {"kokoro": "loading"},
                "saturated": False,
                "sessions": 0,
                "speaking": 0,
                "stalled": 0,
            }
            assert (await http.get("/v1/voices")).status_code == 503
            async with ws_connect(served.ws_url, compression=None) as socket:
                await send(socket, {"type": "start"})  # waits for the backend
                await asyncio.sleep(0.1)
                gate.set()
                assert isinstance(await receive(socket), Ready)
            ready = await http.get("/healthz")
            assert ready.status_code == 200
            body = ready.json()
            assert set(body.pop("load")) == {"queued", "load", "max_load", "would_run_dry"}
            assert body == {
                "status": "ok",
                "backends": {"kokoro": "ready"},
                "saturated": False,
                "sessions": 1,
                "speaking": 0,
                "stalled": 0,
            }
    finally:
        await served.stop()


async def test_a_backend_that_failed_to_load_is_reported() -> None:
    import httpx

    broken = ToneBackend("kokoro", load_error=RuntimeError("weights missing"))
    served = await serve(repo_config(), {"kokoro": broken})
    try:
        async with httpx.AsyncClient(base_url=served.http_url) as http:
            health = await http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["backends"] == {"kokoro": "failed: weights missing"}
        async with ws_connect(served.ws_url, compression=None) as socket:
            await send(socket, {"type": "start"})
            await expect_error(socket, "backend_unavailable", "failed to load: weights missing")
    finally:
        await served.stop()
