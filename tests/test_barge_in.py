"""Barge-in with the listener far behind: real espeak-ng and Piper on a real server, the client
holding the full 8 s of audio the pacing allows when it cancels (issue 19, item 7)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from gateway.backends.espeak import EspeakBackend
from gateway.backends.piper import PiperBackend
from gateway.core.protocol import (
    Audio,
    Cancelled,
    Progress,
    Ready,
    ServerMessage,
    decode_server_message,
)
from tests.conftest import RunningServer, repo_config, serve, timeout

STORY = " ".join(
    ["The lighthouse keeper climbed the stairs again, counting every step on the way up."] * 12
)
FRAME_SAMPLES = 480


@pytest.fixture(scope="module")
async def engines(espeak: EspeakBackend, piper: PiperBackend) -> AsyncIterator[RunningServer]:
    running = await serve(repo_config(), {"kokoro": espeak, "espeak": espeak, "piper": piper})
    yield running
    await running.stop()


async def receive(socket: ClientConnection) -> ServerMessage:
    async with asyncio.timeout(timeout(30)):
        frame = await socket.recv()
    assert isinstance(frame, bytes)
    return decode_server_message(frame)


async def fill_the_buffer(socket: ClientConnection, limit_ms: float) -> None:
    """Send a long text; return once the gateway reports its pacing limit reached."""
    await socket.send(msgpack.packb({"type": "text", "text": STORY}))
    await socket.send(msgpack.packb({"type": "flush"}))
    while True:
        message = await receive(socket)
        if isinstance(message, Progress) and message.audio_buffered_ms >= limit_ms - 500:
            return


async def caught_up(socket: ClientConnection) -> None:
    """Read what has already arrived (until nothing comes for 5 ms): frames counted after the
    cancel are then those sent after it, not ones this client was late to read."""
    while True:
        try:
            async with asyncio.timeout(0.005):
                await socket.recv()
        except TimeoutError:
            return


@pytest.mark.parametrize("backend", ["espeak", "piper"])
async def test_a_cancel_far_ahead_stops_the_audio_at_once(
    engines: RunningServer, backend: str
) -> None:
    limit_ms = engines.gateway.config.limits.max_buffer_ahead_s * 1000
    async with ws_connect(engines.ws_url, compression=None, max_size=None) as socket:
        await socket.send(msgpack.packb({"type": "start", "backend": backend}))
        assert isinstance(await receive(socket), Ready)
        # Three barge-ins: before the fix the frames held back by pacing (up to 25) went out
        # at real-time pace after each cancel, so three rounds cannot all pass by luck.
        for round_ in range(3):
            await fill_the_buffer(socket, limit_ms)
            await caught_up(socket)
            await socket.send(msgpack.packb({"type": "cancel", "id": round_}))
            late_frames = 0
            while not isinstance(message := await receive(socket), Cancelled):
                late_frames += isinstance(message, Audio)
            # What was already on the way when the cancel left (one paced burst), nothing
            # that the gateway still held.
            assert late_frames <= 3, f"round {round_}: {late_frames} frames after the cancel"
            assert message.id == round_
