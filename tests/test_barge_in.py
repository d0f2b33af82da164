"""Barge-in with the listener far behind: real espeak-ng and Piper on a real server, the client
holding the full 8 s of audio the pacing allows when it cancels (issue 19, item 7)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgpack
import pytest
from websockets.asyncio.client import connect as ws_connect

from bench.barge_in import one_round
from gateway.backends.espeak import EspeakBackend
from gateway.backends.piper import PiperBackend
from tests.conftest import RunningServer, repo_config, serve


@pytest.fixture(scope="module")
async def engines(espeak: EspeakBackend, piper: PiperBackend) -> AsyncIterator[RunningServer]:
    running = await serve(repo_config(), {"kokoro": espeak, "espeak": espeak, "piper": piper})
    yield running
    await running.stop()


@pytest.mark.parametrize("backend", ["espeak", "piper"])
async def test_a_cancel_far_ahead_stops_the_audio_at_once(
    engines: RunningServer, backend: str
) -> None:
    limit_ms = engines.gateway.config.limits.max_buffer_ahead_s * 1000
    async with ws_connect(engines.ws_url, compression=None, max_size=None) as socket:
        await socket.send(msgpack.packb({"type": "start", "backend": backend}))
        assert msgpack.unpackb(await socket.recv())["type"] == "ready"
        # Three barge-ins: before the fix the frames held back by pacing (up to 25) went out
        # at real-time pace after each cancel, so three rounds cannot all pass by luck.
        for round_ in range(3):
            # The round of the benchmark (bench/barge_in.py): fill the listener's buffer, read
            # what has arrived, cancel, count the frames before `cancelled`.
            _, late_frames = await one_round(socket, limit_ms)
            # What was already on the way when the cancel left (one paced burst), nothing
            # that the gateway still held.
            assert late_frames <= 3, f"round {round_}: {late_frames} frames after the cancel"
