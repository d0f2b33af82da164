"""Cost over the wire: ``estimate`` on the socket, ``POST /v1/estimate``, and the cost so far in
``progress`` and ``done.metrics``, on real gateways.

The priced path is real end to end: a gateway's OpenAI backend (model ``tts-1``, priced per
character in config.toml) talks to a second gateway's ``POST /v1/audio/speech``, where
``tts-1`` means that gateway's default backend: the tone backend (tests/fakes.py), so the test
is fast; the audio path itself is covered with Kokoro in tests/test_remote_speech.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import msgpack
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from gateway.backends.openai_speech import OpenAIBackend
from gateway.backends.settings import OpenAISettings
from gateway.core.cost import DEFAULT_PRICES, billable_chars
from gateway.core.protocol import (
    Done,
    Error,
    Estimated,
    Progress,
    SegmentStart,
    ServerMessage,
)
from gateway.core.protocol import decode_server_message as decode
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.fakes import ToneBackend
from tests.streams import collect
from tts_gateway_client import connect

TTS_1_PER_CHAR = DEFAULT_PRICES["openai/tts-1"].usd_per_million_chars / 1e6
SENTENCES = ["Hello there. ", "How are you today? ", "Fine, thanks."]


@pytest.fixture
async def raw(server: RunningServer) -> AsyncIterator[ClientConnection]:
    async with ws_connect(server.ws_url, compression=None) as socket:
        yield socket


async def ask(socket: ClientConnection, body: dict[str, object]) -> ServerMessage:
    await socket.send(msgpack.packb(body))
    async with asyncio.timeout(timeout(10)):
        while True:
            frame = await socket.recv()
            assert isinstance(frame, bytes)
            message = decode(frame)
            if not isinstance(message, Progress):
                return message


async def test_estimate_on_the_socket_before_and_after_start(raw: ClientConnection) -> None:
    refused = await ask(raw, {"type": "estimate", "text": "Hi.", "id": 1})
    assert isinstance(refused, Error)
    assert (refused.code, refused.ref, refused.fatal) == ("not_started", "estimate", False)
    assert "estimate.backend" in refused.message
    unknown = await ask(raw, {"type": "estimate", "text": "Hi.", "backend": "nope"})
    assert isinstance(unknown, Error)
    assert unknown.code == "unknown_backend"
    bad = await ask(raw, {"type": "estimate", "text": "Hi.", "backend": "fake", "speed": 9})
    assert isinstance(bad, Error)
    assert bad.code == "invalid_field"
    before = await ask(raw, {"type": "estimate", "text": " Hello! ", "backend": "kokoro", "id": 2})
    assert before == Estimated(2, "kokoro", None, 6, 0.4, 0.0, "USD")
    ready = await ask(raw, {"type": "start", "backend": "fake", "speed": 2.0})
    assert ready.TYPE == "ready"
    after = await ask(raw, {"type": "estimate", "text": "Hello!", "id": "a"})
    assert after == Estimated("a", "fake", None, 6, 0.2, 0.0, "USD")  # at the session's speed
    other = await ask(raw, {"type": "estimate", "text": "Hello!", "backend": "kokoro"})
    assert isinstance(other, Estimated)
    assert (other.backend, other.audio_s) == ("kokoro", 0.2)


@pytest.mark.model
async def test_a_local_backend_costs_nothing_and_reports_its_compute_time(
    server: RunningServer,
) -> None:
    async with connect(server.ws_url) as stream:
        stream.feed(SENTENCES)
        transcript = await collect(stream, deadline_s=timeout(60))
    done = transcript.done
    assert isinstance(done, Done)
    metrics = done.metrics
    assert metrics["cost_usd"] == 0.0
    assert metrics["compute_s"] > 0
    assert metrics["billed_chars"] == billable_chars("Hello there.") + billable_chars(
        "How are you today?"
    ) + billable_chars("Fine, thanks.")
    assert metrics["billed_audio_s"] > 1.0
    # Model time, within the calls' wall time: a call that waits for the model (the session's
    # next call queues behind its current window, each then on one core) counts that wait in
    # ``synthesis_ms`` but not in ``compute_s``.
    synthesis_s = metrics["synthesis_ms"] / 1000
    assert 0.9 * synthesis_s <= metrics["compute_s"] <= synthesis_s + 0.01
    progress = transcript.of(Progress)
    assert all(p.cost_usd == 0.0 for p in progress)
    computes = [p.compute_s for p in progress]
    assert computes == sorted(computes)
    assert computes[-1] == metrics["compute_s"]


@pytest.fixture
async def provider() -> AsyncIterator[RunningServer]:
    """A gateway whose default backend is the tone backend: the OpenAI 'provider'."""
    gateway = await serve(repo_config(), {"kokoro": ToneBackend("kokoro")})
    yield gateway
    await gateway.stop()


def openai_backend(name: str, provider: RunningServer, model: str) -> OpenAIBackend:
    return OpenAIBackend(
        name,
        OpenAISettings(base_url=provider.http_url, model=model, voices=("tone",),
                       default_voice="tone"),
    )  # fmt: skip


async def test_a_priced_backend_reports_its_cost_as_it_speaks(provider: RunningServer) -> None:
    gateway = await serve(
        repo_config(),
        {
            "openai": openai_backend("openai", provider, "tts-1"),
            "unpriced": openai_backend("unpriced", provider, "kokoro"),
        },
        close_backends=True,
    )
    try:
        async with connect(gateway.ws_url, backend="openai") as stream:
            await stream.estimate("".join(SENTENCES), "before")
            stream.feed(SENTENCES)
            transcript = await collect(stream, deadline_s=timeout(30))
        estimated = transcript.of(Estimated)
        chars = billable_chars("".join(SENTENCES))
        assert estimated == [
            Estimated("before", "openai", "tts-1", chars, round(chars / 15, 2),
                      round(chars * TTS_1_PER_CHAR, 6), "USD")
        ]  # fmt: skip
        done = transcript.done
        assert isinstance(done, Done)
        # One request per segment (queued sentences may have been joined), each sent stripped.
        segments = transcript.of(SegmentStart)
        billed = done.metrics["billed_chars"]
        assert billed == sum(billable_chars(segment.text) for segment in segments)
        assert sum(billable_chars(text) for text in SENTENCES) <= billed <= chars
        assert done.metrics["cost_usd"] == round(billed * TTS_1_PER_CHAR, 6)
        costs = [p.cost_usd or 0.0 for p in transcript.of(Progress) if p.event == "segment_done"]
        assert len(costs) == len(segments) >= 2
        assert costs[0] > 0
        assert costs == sorted(set(costs))
        assert costs[-1] == done.metrics["cost_usd"]

        async with connect(gateway.ws_url, backend="unpriced") as stream:
            await stream.estimate("Hello.")
            stream.feed(["Hello there."])
            unpriced = await collect(stream, deadline_s=timeout(30))
        assert [e.cost_usd for e in unpriced.of(Estimated)] == [None]
        assert unpriced.done is not None
        assert unpriced.done.metrics["cost_usd"] is None  # unknown, never a silent 0
        assert unpriced.done.metrics["billed_chars"] == len("Hello there.")

        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"{gateway.http_url}/v1/estimate", json={"input": "Hello.", "model": "openai"}
            )
        assert answer.json() == {
            "object": "estimate", "chars": 6, "audio_s": 0.4,
            "cost_usd": round(6 * TTS_1_PER_CHAR, 6), "currency": "USD", "backend": "openai",
            "model": "tts-1",
        }  # fmt: skip
    finally:
        await gateway.stop()
