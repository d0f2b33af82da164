"""Hardening on a real server: limits, authentication, pacing, faults and fallbacks."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgpack
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from gateway.backends.base import AudioChunk, SynthesisRequest
from gateway.config import AuthRequired, AuthSettings, LimitsSettings, SessionSettings
from gateway.core.protocol import (
    BackendSwitched,
    Cancelled,
    Error,
    Progress,
    Ready,
    SegmentEnd,
    ServerMessage,
    decode_server_message,
)
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.fakes import HANG_MARKER, RAISE_MARKER, ToneBackend
from tests.streams import check_segments_cover, check_timeline, collect, errors
from tts_gateway_client import connect

KEY = "k-0123456789abcdef-one"
OTHER_KEY = "k-0123456789abcdef-two"


def auth_config(**auth: Any) -> dict[str, Any]:
    settings = AuthSettings(required=AuthRequired.YES, api_keys=(KEY, OTHER_KEY), **auth)
    return {"auth": settings}


@pytest.fixture
async def secured() -> AsyncIterator[RunningServer]:
    limits = dataclasses.replace(LimitsSettings(), max_sessions_per_key=2)
    running = await serve(
        repo_config(limits=limits, **auth_config(allowed_origins=("https://app.example",))),
        {"kokoro": ToneBackend("kokoro")},
    )
    yield running
    await running.stop()


async def receive(socket: ClientConnection) -> ServerMessage:
    async with asyncio.timeout(timeout(10)):
        frame = await socket.recv()
    assert isinstance(frame, bytes)
    return decode_server_message(frame)


async def closed(socket: ClientConnection) -> list[ServerMessage]:
    """Everything until the server closes the socket."""
    messages = []
    try:
        while True:
            messages.append(await receive(socket))
    except ConnectionClosed:
        return messages


async def start(socket: ClientConnection) -> None:
    await socket.send(msgpack.packb({"type": "start"}))
    assert isinstance(await receive(socket), Ready)


# -- authentication --------------------------------------------------------------------------


async def test_a_bearer_key_opens_a_session(secured: RunningServer) -> None:
    async with ws_connect(secured.ws_url, additional_headers={"Authorization": f"Bearer {KEY}"},
                          compression=None) as socket:  # fmt: skip
        await start(socket)


async def test_a_wrong_key_is_refused_before_the_upgrade(secured: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(
            secured.ws_url, additional_headers={"Authorization": "Bearer not-a-valid-key-1234"}
        ):
            pass  # pragma: no cover  # fmt: skip
    assert refused.value.response.status_code == 401
    assert b"invalid API key or token" in refused.value.response.body


async def test_browsers_use_a_short_lived_token(secured: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=secured.http_url) as http:
        assert (await http.post("/v1/tokens")).status_code == 401
        minted = await http.post("/v1/tokens", headers={"Authorization": f"Bearer {KEY}"})
        token = minted.json()["token"]
        assert minted.json()["expires_in"] == 300
        # A token is not an API key: it cannot mint more tokens.
        again = await http.post("/v1/tokens", headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 401
    # In the subprotocol, next to the protocol's name...
    offered = [Subprotocol("tts-gateway"), Subprotocol(f"bearer.{token}")]
    async with ws_connect(secured.ws_url, subprotocols=offered, compression=None) as socket:
        assert socket.subprotocol == "tts-gateway"
        await start(socket)
    # ...or as the first message.
    async with ws_connect(secured.ws_url, compression=None) as socket:
        await socket.send(msgpack.packb({"type": "auth", "token": token}))
        await start(socket)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    async with ws_connect(secured.ws_url, compression=None) as socket:
        await socket.send(msgpack.packb({"type": "auth", "token": tampered}))
        (error,) = await closed(socket)
        assert isinstance(error, Error)
        assert error.code == "unauthorized"
        assert socket.close_code == 1008


async def test_no_credentials_in_time_closes_the_session() -> None:
    running = await serve(
        repo_config(**auth_config(first_message_timeout_s=0.3)), {"kokoro": ToneBackend("kokoro")}
    )
    try:
        async with ws_connect(running.ws_url, compression=None) as socket:
            (error,) = await closed(socket)
            assert isinstance(error, Error)
            assert error.code == "unauthorized"
            assert socket.close_code == 1008
        async with ws_connect(running.ws_url, compression=None) as socket:
            await socket.send(msgpack.packb({"type": "start"}))  # start before auth
            (error,) = await closed(socket)
            assert isinstance(error, Error)
            assert "authenticate first" in error.message
    finally:
        await running.stop()


async def test_http_routes_need_the_key_too(secured: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=secured.http_url) as http:
        assert (await http.get("/v1/voices")).status_code == 401
        ok = await http.get("/v1/voices", headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200
        assert (await http.get("/healthz")).status_code == 200  # health stays open


async def test_only_allowed_origins(secured: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(
            secured.ws_url,
            origin="https://evil.example",  # type: ignore[arg-type]
            additional_headers=headers,
        ):
            pass  # pragma: no cover  # fmt: skip
    assert refused.value.response.status_code == 403
    async with ws_connect(secured.ws_url, origin="https://app.example",  # type: ignore[arg-type]
                          additional_headers=headers, compression=None) as socket:  # fmt: skip
        await start(socket)


async def test_sessions_per_key_are_limited(secured: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        ws_connect(secured.ws_url, additional_headers=headers, compression=None) as one,
        ws_connect(secured.ws_url, additional_headers=headers, compression=None) as two,
    ):
        await start(one)
        await start(two)
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(secured.ws_url, additional_headers=headers):
                pass  # pragma: no cover
        assert refused.value.response.status_code == 429
        # Another key has its own allowance; a first-message auth over the limit gets 1013.
        other = {"Authorization": f"Bearer {OTHER_KEY}"}
        async with ws_connect(secured.ws_url, additional_headers=other, compression=None) as x:
            await start(x)
        async with ws_connect(secured.ws_url, compression=None) as late:
            await late.send(msgpack.packb({"type": "auth", "token": KEY}))
            (error,) = await closed(late)
            assert isinstance(error, Error)
            assert error.code == "too_many_sessions"
            assert late.close_code == 1013


async def test_total_sessions_are_limited() -> None:
    limits = dataclasses.replace(LimitsSettings(), max_sessions=1)
    running = await serve(repo_config(limits=limits), {"kokoro": ToneBackend("kokoro")})
    try:
        async with ws_connect(running.ws_url, compression=None) as first:
            await start(first)
            with pytest.raises(InvalidStatus) as refused:
                async with ws_connect(running.ws_url):
                    pass  # pragma: no cover
            assert refused.value.response.status_code == 503
    finally:
        await running.stop()


async def test_keys_never_reach_the_logs(
    secured: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with connect(secured.ws_url, additional_headers={"Authorization": f"Bearer {KEY}"},
                       ) as stream:  # fmt: skip
        stream.feed(["Hello there."])
        await collect(stream, deadline_s=timeout(10))
    async with ws_connect(secured.ws_url, compression=None) as socket:
        await socket.send(msgpack.packb({"type": "auth", "token": OTHER_KEY + "x"}))
        await closed(socket)
    server_side = [r for r in caplog.records if r.name.startswith(("gateway", "uvicorn"))]
    text = "\n".join(record.getMessage() for record in server_side)
    assert "session opened" in text
    assert KEY not in text
    assert OTHER_KEY not in text


async def test_no_compression_is_negotiated(server: RunningServer) -> None:
    async with ws_connect(server.ws_url) as socket:  # offers permessage-deflate by default
        assert socket.response is not None
        assert "Sec-WebSocket-Extensions" not in socket.response.headers


# -- limits ----------------------------------------------------------------------------------


async def test_message_rate_is_limited() -> None:
    limits = dataclasses.replace(LimitsSettings(), max_messages_per_s=5, max_message_burst=10)
    running = await serve(repo_config(limits=limits), {"kokoro": ToneBackend("kokoro")})
    try:
        async with ws_connect(running.ws_url, compression=None) as socket:
            await start(socket)
            for _ in range(30):
                await socket.send(msgpack.packb({"type": "text", "text": "word "}))
            messages = await closed(socket)
            failure = [m for m in messages if isinstance(m, Error)]
            assert failure[-1].code == "rate_limited"
            assert failure[-1].char_start == 0  # the accepted text is reported, not lost
            assert socket.close_code == 1008
    finally:
        await running.stop()


async def test_handshake_and_idle_timeouts() -> None:
    limits = dataclasses.replace(LimitsSettings(), handshake_timeout_s=0.3, idle_timeout_s=0.5)
    running = await serve(repo_config(limits=limits), {"kokoro": ToneBackend("kokoro")})
    try:
        async with ws_connect(running.ws_url, compression=None) as socket:
            (error,) = await closed(socket)
            assert isinstance(error, Error)
            assert error.code == "handshake_timeout"
            assert socket.close_code == 1008
        async with ws_connect(running.ws_url, compression=None) as socket:
            await start(socket)
            await socket.send(msgpack.packb({"type": "text", "text": "Speak, then wait."}))
            messages = await closed(socket)  # spoken first, then idle
            assert any(m.TYPE == "segment_end" for m in messages)
            assert isinstance(messages[-1], Error)
            assert (messages[-1].code, messages[-1].fatal) == ("idle_timeout", True)
            assert socket.close_code == 1008
    finally:
        await running.stop()


async def test_invalid_utf8_closes_with_1007(server: RunningServer) -> None:
    async with ws_connect(server.ws_url, compression=None) as socket:
        await socket.send(b"\x82\xa4type\xa4text\xa4text\xa2\xff\xfe")
        (error,) = await closed(socket)
        assert isinstance(error, Error)
        assert "UTF-8" in error.message
        assert socket.close_code == 1007


# -- pacing ----------------------------------------------------------------------------------


async def test_audio_never_runs_far_ahead_of_the_listener() -> None:
    limits = dataclasses.replace(LimitsSettings(), max_buffer_ahead_s=1.0)
    running = await serve(repo_config(limits=limits), {"kokoro": ToneBackend("kokoro")})
    try:
        async with connect(running.ws_url) as stream:
            stream.feed([" ".join(["one two three four."] * 12)])  # about 9 s of tones
            transcript = await collect(stream, deadline_s=timeout(40))
    finally:
        await running.stop()
    check_timeline(transcript)
    buffered = [p.audio_buffered_ms for p in transcript.of(Progress)]
    assert max(buffered) <= 1000 + 20 + 1  # the limit, give or take one frame
    # Real time set the pace: the audio took about as long to arrive as to play.
    span = transcript.arrivals[-1] - transcript.arrivals[0]
    audio_s = len(transcript.audio) * transcript.ready.frame_samples / 24000
    assert span >= audio_s - 1.0 - 0.5


async def test_speech_after_a_pause_for_text_is_due_like_a_first_segment() -> None:
    """A listener that ran out of audio because the text came slowly (an LLM slower than
    speech) waits for sound like a new one: not behind the sessions still playing, as a
    listener that ran dry while its session had work does."""
    backend = ToneBackend("kokoro")
    running = await serve(repo_config(), {"kokoro": backend})
    try:
        async with connect(running.ws_url) as stream:
            await stream.send_text("One two. Three")
            async for message in stream:
                if isinstance(message, SegmentEnd):
                    break
            await asyncio.sleep(1.5)  # its audio (under a second) has played out; text pends
            asked_at = time.monotonic()
            await stream.send_text(" four. Five")
            async for message in stream:
                if isinstance(message, SegmentEnd):
                    break
            await stream.end()
            async for _ in stream:
                pass
    finally:
        await running.stop()
    resumed = next(r for r in backend.requests if r.text.strip().startswith("Three"))
    assert resumed.deadline is not None
    due_in = resumed.deadline - asked_at
    assert due_in < 1.2  # within the latency target (0.4 s), not a dry listener's 2 s grace


# -- faults and fallback -----------------------------------------------------------------------


class BrokenAudio(ToneBackend):
    """Returns NaNs for one word's segment."""

    async def synthesize(self, request: SynthesisRequest) -> AsyncIterator[AudioChunk]:
        if "NANS" in request.text:
            yield AudioChunk(np.full(480, np.nan, np.float32))
            return
        async for chunk in super().synthesize(request):
            yield chunk


async def test_hanging_and_malformed_backends_fail_their_segment_only() -> None:
    limits = dataclasses.replace(LimitsSettings(), backend_timeout_s=0.5)
    fixed = dataclasses.replace(SessionSettings(), adaptive_chunking=False)  # one call a segment
    running = await serve(
        repo_config(limits=limits, session=fixed), {"kokoro": BrokenAudio("kokoro")}
    )
    text = f"First fine. Then {HANG_MARKER} here. Then NANS here. Last fine."
    try:
        async with connect(running.ws_url) as stream:
            stream.feed([text])
            transcript = await collect(stream, deadline_s=timeout(20))
    finally:
        await running.stop()
    failures = errors(transcript)
    assert [(e.code, text[e.char_start : e.char_end]) for e in failures] == [
        ("backend_error", f" Then {HANG_MARKER} here."),
        ("backend_error", " Then NANS here."),
    ]
    assert "no audio for 0.5 s" in failures[0].message
    assert "not finite" in failures[1].message
    done = transcript.done
    assert done is not None
    assert done.metrics["chars_spoken"] + done.metrics["chars_unspoken"] == len(text)
    check_timeline(transcript)


async def test_a_failing_backend_falls_back_at_a_segment_boundary() -> None:
    config = repo_config(session=dataclasses.replace(SessionSettings(), adaptive_chunking=False))
    spare = config.backends["kokoro"]
    primary = dataclasses.replace(spare, fallback="spare")
    config = dataclasses.replace(config, backends={"kokoro": primary, "spare": spare})
    running = await serve(config, {"kokoro": ToneBackend("kokoro"), "spare": ToneBackend("spare")})
    text = f"Fine here. Then {RAISE_MARKER} now. And after."
    try:
        async with connect(running.ws_url) as stream:
            stream.feed([text])
            transcript = await collect(stream, deadline_s=timeout(20))
    finally:
        await running.stop()
    (switched,) = transcript.of(BackendSwitched)
    assert (switched.previous, switched.backend) == ("kokoro", "spare")
    assert "injected failure" in switched.reason
    # The tone backend fails on that word in both instances, so that segment is reported...
    assert [e.code for e in errors(transcript)] == ["backend_error"]
    # ...and the rest of the session is spoken by the fallback.
    done = transcript.done
    assert done is not None
    assert done.metrics["chars_unspoken"] == len(f" Then {RAISE_MARKER} now.")
    check_segments_cover(transcript.segments, text)


# -- no text is lost -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
async def test_every_accepted_character_is_spoken_or_reported(
    server: RunningServer, seed: int
) -> None:
    """Random sessions (text in random pieces, flushes, barge-ins at random playback positions,
    some backend failures): every character is either spoken or reported unspoken, once."""
    rng = random.Random(seed)
    words = ["alpha", "beta,", "gamma.", "delta!", "épsilon", "zeta?", "eta\n", RAISE_MARKER]
    sent = 0
    async with connect(server.ws_url, backend="fake") as stream:
        messages: list[ServerMessage] = []
        for _ in range(rng.randint(3, 12)):
            action = rng.random()
            if action < 0.6:
                text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) + " "
                await stream.send_text(text)
                sent += len(text)
            elif action < 0.8:
                await stream.flush()
            else:
                await stream.cancel(position=rng.randint(0, 48000))
                answer = await collect(stream, until=Cancelled, deadline_s=timeout(20))
                messages += answer.messages
            await asyncio.sleep(rng.random() * 0.05)
        await stream.end()
        rest = await collect(stream, deadline_s=timeout(30))
        messages += rest.messages
    done = rest.done
    assert done is not None
    metrics = done.metrics
    assert metrics["chars_received"] == sent
    assert metrics["chars_spoken"] + metrics["chars_unspoken"] == sent
    cancelled = [m for m in messages if isinstance(m, Cancelled)]
    failed = [m for m in messages if isinstance(m, Error)]
    reported = sum(c.unspoken_end - c.unspoken_start for c in cancelled)
    reported += sum((e.char_end or 0) - (e.char_start or 0) for e in failed)
    assert reported == metrics["chars_unspoken"]
    for earlier, later in itertools.pairwise(cancelled):
        assert earlier.unspoken_end <= later.unspoken_start  # reported once
