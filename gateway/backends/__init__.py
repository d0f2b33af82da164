"""Backends: the registry from a configured ``kind`` to the factory that builds it.

Factories import their engine lazily, so configuring a backend never imports a runtime that a
process does not use.

A ``[backends.<name>]`` table may leave out ``kind``: the name then picks it through
:data:`KIND_PATTERNS` (glob patterns, the most specific match wins), so several instances of
one kind can be configured by name alone (``[backends.piper_amy]``, ``[backends.espeak_fr]``).
An explicit ``kind`` always wins.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Final

from gateway.backends.base import AudioChunk, Backend, BackendError, SynthesisRequest, Voice
from gateway.backends.settings import (
    AllTalkSettings,
    BackendSettings,
    ChatterboxSettings,
    ElevenLabsSettings,
    EspeakSettings,
    KokoroOnnxSettings,
    KokoroTorchSettings,
    OpenAISettings,
    PiperSettings,
)

__all__ = [
    "BACKEND_FACTORIES",
    "KIND_PATTERNS",
    "AudioChunk",
    "Backend",
    "BackendError",
    "SynthesisRequest",
    "Voice",
    "create_backend",
    "kind_for_name",
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


def _espeak(name: str, settings: BackendSettings) -> Backend:
    from gateway.backends.espeak import EspeakBackend

    assert isinstance(settings, EspeakSettings)
    return EspeakBackend(name, settings)


def _piper(name: str, settings: BackendSettings) -> Backend:
    from gateway.backends.piper import PiperBackend

    assert isinstance(settings, PiperSettings)
    return PiperBackend(name, settings)


BACKEND_FACTORIES: Final[dict[str, BackendFactory]] = {
    "kokoro_onnx": _kokoro_onnx,
    "kokoro_torch": _kokoro_torch,
    "chatterbox": _chatterbox,
    "openai": _openai,
    "alltalk": _alltalk,
    "elevenlabs": _elevenlabs,
    "espeak": _espeak,
    "piper": _piper,
}

# Instance name pattern -> kind, for tables without `kind`.
KIND_PATTERNS: Final[dict[str, str]] = {
    "kokoro*": "kokoro_onnx",
    "kokoro_torch*": "kokoro_torch",
    "chatterbox*": "chatterbox",
    "espeak*": "espeak",
    "piper*": "piper",
    "openai*": "openai",
    "alltalk_*": "alltalk",
    "elevenlabs*": "elevenlabs",
}


def kind_for_name(name: str) -> str | None:
    """The kind a backend instance named ``name`` has by default, if a pattern matches.

    Among matching patterns the longest (most specific) wins, so ``kokoro_torch*`` would beat
    ``kokoro*``. Matching is case-sensitive.
    """
    matches = [pattern for pattern in KIND_PATTERNS if fnmatch.fnmatchcase(name, pattern)]
    if not matches:
        return None
    return KIND_PATTERNS[max(matches, key=len)]


def create_backend(name: str, settings: BackendSettings) -> Backend:
    """Build the backend configured as ``[backends.<name>]``."""
    factory = BACKEND_FACTORIES.get(settings.kind)
    if factory is None:
        raise BackendError(f"backends.{name}: no backend of kind {settings.kind!r}")
    return factory(name, settings)
