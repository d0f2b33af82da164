"""The ``gateway`` backend: an edge gateway sending synthesis to upstream gateways (a model tier)
through their ``/v1/stream``, against real gateways on loopback serving real Kokoro.

The conformance suite (tests/test_backend_conformance.py) checks it as every other backend; this
file checks what is its own: word timings identical to a direct session, the URL list, an
upstream refusing or dying, the API key.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.backends.base import SynthesisRequest
from gateway.backends.gateway import GatewayBackend
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.remote import RemoteError
from gateway.backends.settings import GatewaySettings
from gateway.config import AuthRequired, AuthSettings, Config
from gateway.core.protocol import Done, Words
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.fakes import ToneBackend
from tests.servers import eventually
from tests.streams import collect
from tts_gateway_client import connect

pytestmark = pytest.mark.model

TEXT = (
    "The lighthouse keeper climbed the stairs every evening at dusk. He trimmed the wick, "
    "polished the lens, and paid $5 for oil. Then he watched the ships pass by!"
)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def upstream_backend(*urls: str, **options: Any) -> GatewayBackend:
    settings = GatewaySettings(urls=urls, backend="kokoro", **options)
    return GatewayBackend("model", settings)


def deterministic() -> Config:
    """Sessions whose audio depends on the text alone: each segment one call (no adaptive
    chunking, which sizes calls by the listener's buffer, a matter of timing)."""
    config = repo_config()
    return dataclasses.replace(
        config, session=dataclasses.replace(config.session, adaptive_chunking=False)
    )


@pytest.fixture(scope="module")
async def upstream(kokoro_whole: KokoroOnnxBackend) -> AsyncIterator[RunningServer]:
    """A model gateway serving real Kokoro, each model pass decoded whole (Kokoro's windows
    are sized by the listener's clock, so two sessions on the same text may differ)."""
    running = await serve(deterministic(), {"kokoro": kokoro_whole})
    yield running
    await running.stop()


@pytest.fixture(scope="module")
async def edge(upstream: RunningServer) -> AsyncIterator[RunningServer]:
    """An edge gateway whose backend ``model`` is the upstream's Kokoro (after a dead URL)."""
    dead = f"http://127.0.0.1:{free_port()}"
    backend = upstream_backend(dead, upstream.http_url)
    await backend.load()
    running = await serve(deterministic(), {"model": backend}, close_backends=True)
    yield running
    await running.stop()


async def session_words(url: str, backend: str, text: str) -> tuple[list[dict[str, Any]], Done]:
    async with connect(url, backend=backend, format="pcm16") as stream:
        stream.feed([text])
        transcript = await collect(stream, deadline_s=timeout(120))
    done = transcript.done
    assert done is not None, transcript.kinds()
    words = [w for m in transcript.of(Words) for w in m.words]
    assert transcript.of(Words)
    assert not any(m.estimated for m in transcript.of(Words))
    return words, done


async def test_kokoro_word_timings_through_the_model_tier_equal_a_direct_session(
    upstream: RunningServer, edge: RunningServer
) -> None:
    direct, direct_done = await session_words(upstream.ws_url, "kokoro", TEXT)
    tiered, tiered_done = await session_words(edge.ws_url, "model", TEXT)
    assert tiered == direct
    assert tiered_done.metrics["audio_ms"] == direct_done.metrics["audio_ms"]
    assert tiered_done.heard_text == TEXT
    assert any(w.get("spoken") == "five dollars" for w in tiered)


KEY = "upstream-key-0123456789"
BEARER = f"Bearer {KEY}"


def keyed() -> Config:
    """A model gateway that requires a key and takes one session per key."""
    config = repo_config(auth=AuthSettings(required=AuthRequired.YES, api_keys=(KEY,)))
    return dataclasses.replace(
        config, limits=dataclasses.replace(config.limits, max_sessions_per_key=1)
    )


def tone_tier(*urls: str, **options: Any) -> GatewayBackend:
    settings = GatewaySettings(urls=urls, backend="fake", default_voice="tone", word_timing=False,
                               **options)  # fmt: skip
    return GatewayBackend("model", settings)


async def pcm_length(backend: GatewayBackend, text: str) -> int:
    request = SynthesisRequest(text, backend.default_voice, backend.default_lang, 1.0)
    return sum([len(chunk.pcm) async for chunk in backend.synthesize(request)])


async def test_the_key_is_sent_and_a_refusing_upstream_passes_the_call_to_the_next() -> None:
    async with contextlib.AsyncExitStack() as stack:
        tones = [ToneBackend("fake"), ToneBackend("fake")]
        busy, spare = [await serve(keyed(), {"fake": tone}) for tone in tones]
        for running in (busy, spare):
            stack.push_async_callback(running.stop)
        without_key = tone_tier(busy.http_url)
        with pytest.raises(RemoteError) as refused:
            await without_key.load()
        assert refused.value.status == 401
        await without_key.aclose()

        backend = tone_tier(busy.http_url, spare.http_url, api_key=KEY)
        stack.push_async_callback(backend.aclose)
        await backend.load()
        assert await pcm_length(backend, "Served by the first upstream.") > 0
        # The key's one session on the first upstream is taken: it answers 429, the next serves.
        holder = await stack.enter_async_context(
            connect(
                busy.ws_url, backend="fake", additional_headers={"Authorization": f"Bearer {KEY}"}
            )
        )
        assert await pcm_length(backend, "Served by the second upstream.") > 0
        served = [[r.text for r in tone.requests if "upstream" in r.text] for tone in tones]
        assert served == [["Served by the first upstream."], ["Served by the second upstream."]]
        await holder.end()


async def drain(chunks: AsyncIterator[Any]) -> None:
    async for _ in chunks:
        pass


async def test_an_upstream_dying_mid_call_fails_the_call_without_repeating_audio() -> None:
    slow = ToneBackend("fake", chunk_delay_s=0.05)
    upstream = await serve(repo_config(), {"fake": slow})
    backend = tone_tier(upstream.http_url, max_attempts=3)
    try:
        await backend.load()
        request = SynthesisRequest("one two three four five six seven eight nine ten " * 4,
                                   "tone", "en-us", 1.0)  # fmt: skip
        chunks = backend.synthesize(request)
        first = await anext(chunks)
        assert len(first.pcm) > 0
        await upstream.stop()  # shutting down: the session ends with 1001 mid-stream
        with pytest.raises(RemoteError, match=r"after part of the audio|shutting_down"):
            await asyncio.wait_for(drain(chunks), timeout(30))
        assert backend.counters.running == 0
    finally:
        await backend.aclose()
        await upstream.stop()


async def test_closing_a_call_stops_the_upstream_synthesis() -> None:
    slow = ToneBackend("fake", chunk_delay_s=0.05)
    upstream = await serve(repo_config(), {"fake": slow})
    backend = tone_tier(upstream.http_url)
    try:
        await backend.load()
        request = SynthesisRequest("one two three four five six seven eight nine ten " * 8,
                                   "tone", "en-us", 1.0)  # fmt: skip
        chunks = backend.synthesize(request)
        assert len((await anext(chunks)).pcm) > 0
        assert slow.active == 1
        await chunks.aclose()  # a cancel on the edge
        await eventually(lambda: slow.active == 0, deadline_s=timeout(10))
        assert backend.counters.running == 0
    finally:
        await backend.aclose()
        await upstream.stop()
