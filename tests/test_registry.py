"""The backend registry: kinds to factories, settings per kind, name patterns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from gateway.backends import BACKEND_FACTORIES, KIND_PATTERNS, BackendError, create_backend
from gateway.backends.espeak import EspeakBackend
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.piper import PiperBackend
from gateway.backends.settings import (
    BackendSettings,
    EspeakSettings,
    KokoroOnnxSettings,
    PiperSettings,
)
from gateway.config import BACKEND_SETTINGS, load_config
from gateway.server.run import serve_in_background
from tests.conftest import timeout
from tests.streams import collect
from tts_gateway_client import connect


@pytest.mark.parametrize(
    ("name", "settings", "expected"),
    [
        ("kokoro", KokoroOnnxSettings(), KokoroOnnxBackend),
        ("espeak_de", EspeakSettings(default_lang="de"), EspeakBackend),
        ("piper_amy", PiperSettings(), PiperBackend),
    ],
)
async def test_each_kind_is_built_by_its_factory(
    name: str, settings: BackendSettings, expected: type
) -> None:
    backend = create_backend(name, settings)
    assert isinstance(backend, expected)
    assert backend.name == name
    assert not backend.ready  # nothing is loaded until load()
    await backend.aclose()


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(BackendError, match=r"backends\.x: no backend of kind 'nope'"):
        create_backend("x", BackendSettings(kind="nope"))


def test_every_kind_has_typed_settings_and_patterns_name_known_kinds() -> None:
    assert set(BACKEND_FACTORIES) == set(BACKEND_SETTINGS)
    assert set(KIND_PATTERNS.values()) <= set(BACKEND_FACTORIES)
    for kind, settings_type in BACKEND_SETTINGS.items():
        defaults = {f.name: f.default for f in dataclasses.fields(settings_type)}
        assert defaults["kind"] == kind


async def test_a_gateway_builds_its_backends_from_the_config(tmp_path: Path) -> None:
    """Instances named by pattern, built by the registry, served and spoken through."""
    path = tmp_path / "config.toml"
    path.write_text(
        '[server]\nport = 0\nlog_level = "warning"\n'
        '[session]\ndefault_backend = "espeak_fr"\n'
        '[backends.espeak_fr]\ndefault_lang = "fr"\n'
        "[backends.piper_joe]\nwarmup = false\n"
    )
    server = await serve_in_background(load_config(path, environ={}))
    try:
        url = f"http://127.0.0.1:{server.port}"
        ws_url = f"ws://127.0.0.1:{server.port}/v1/stream"
        async with connect(ws_url) as stream:  # `start` waits for the backend to load
            assert stream.ready.backend == "espeak_fr"
        for backend in ("espeak_fr", "piper_joe"):
            async with connect(ws_url, backend=backend) as stream:
                stream.feed(["Bonjour tout le monde."])
                transcript = await collect(stream, deadline_s=timeout(60))
            assert transcript.kinds()[-1] == "done"
            assert len(transcript.audio) > 10
        async with httpx.AsyncClient(base_url=url) as http:
            health = await http.get("/healthz")
        assert health.json()["backends"] == {"espeak_fr": "ready", "piper_joe": "ready"}
    finally:
        await server.stop()
