"""Backends: the registry from a configured ``kind`` to the factory that builds it.

Factories import their engine lazily, so configuring a backend never imports a runtime that a
process does not use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from gateway.backends.base import AudioChunk, Backend, BackendError, SynthesisRequest, Voice
from gateway.backends.settings import (
    AllTalkSettings,
    BackendSettings,
    ChatterboxSettings,
    ElevenLabsSettings,
    KokoroOnnxSettings,
    KokoroTorchSettings,
    OpenAISettings,
)

__all__ = [
    "BACKEND_FACTORIES",
    "AudioChunk",
    "Backend",
    "BackendError",
    "SynthesisRequest",
    "Voice",
    "create_backend",
]

BackendFactory = Callable[[str, BackendSettings], Backend]


def _kokoro_onnx(name: str, settings: BackendSettings) -> Backend:
    from gateway.backends.kokoro_onnx import KokoroOnnxBackend

    assert isinstance(settings, KokoroOnnxSettings)
    return KokoroOnnxBackend(name, settings)


def _kokoro_torch(name: str, settings: BackendSettings) -> Backend:
    from gateway.backends.kokoro_torch import KokoroTorchBackend

    assert isinstance(settings, KokoroTorchSettings)
    return KokoroTorchBackend(name, settings)


def _chatterbox(name: str, settings: BackendSettings) -> Backend:
    from gateway.backends.chatterbox import ChatterboxBackend

    assert isinstance(settings, ChatterboxSettings)
    return ChatterboxBackend(name, settings)


def _openai(name: str, settings: BackendSettings) -> Backend:
    from gateway.backends.openai_speech import OpenAIBackend

    assert isinstance(settings, OpenAISettings)
    return OpenAIBackend(name, settings)


def _alltalk(name: str, settings: BackendSettings) -> Backend:
    from gateway.backends.alltalk import AllTalkBackend

    assert isinstance(settings, AllTalkSettings)
    return AllTalkBackend(name, settings)


def _elevenlabs(name: str, settings: BackendSettings) -> Backend:
    from gateway.backends.elevenlabs import ElevenLabsBackend

    assert isinstance(settings, ElevenLabsSettings)
    return ElevenLabsBackend(name, settings)


BACKEND_FACTORIES: Final[dict[str, BackendFactory]] = {
    "kokoro_onnx": _kokoro_onnx,
    "kokoro_torch": _kokoro_torch,
    "chatterbox": _chatterbox,
    "openai": _openai,
    "alltalk": _alltalk,
    "elevenlabs": _elevenlabs,
}


def create_backend(name: str, settings: BackendSettings) -> Backend:
    """Build the backend configured as ``[backends.<name>]``."""
    factory = BACKEND_FACTORIES.get(settings.kind)
    if factory is None:
        raise BackendError(f"backends.{name}: no backend of kind {settings.kind!r}")
    return factory(name, settings)
