"""The ``gateway`` backend: an edge gateway sending synthesis to upstream gateways (a model tier)
through their ``/v1/stream``, against real gateways on loopback serving real Kokoro.

The conformance suite (tests/test_backend_conformance.py) checks it as every other backend; this
file checks what is its own: word timings identical to a direct session, the URL list, an
upstream refusing or dying, the API key.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.backends.gateway import GatewayBackend
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.settings import GatewaySettings
from gateway.config import Config
from gateway.core.protocol import Done, Words
from tests.conftest import RunningServer, repo_config, serve, timeout
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
    assert any(w.get("spoken") == "5 dollars" for w in tiered)
