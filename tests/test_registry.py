"""The backend registry: kinds to factories, settings per kind, name patterns."""

from __future__ import annotations

import dataclasses

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
from gateway.config import BACKEND_SETTINGS


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
