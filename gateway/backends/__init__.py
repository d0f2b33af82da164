"""Backends: the engines behind one small interface (:mod:`gateway.backends.base`), and the
registry that builds them from the configuration (:mod:`gateway.backends.registry`)."""

from __future__ import annotations

from gateway.backends.base import AudioChunk, Backend, BackendError, SynthesisRequest, Voice
from gateway.backends.registry import (
    BACKEND_FACTORIES,
    BACKEND_SETTINGS,
    KIND_PATTERNS,
    create_backend,
    kind_for_name,
)

__all__ = [
    "BACKEND_FACTORIES",
    "BACKEND_SETTINGS",
    "KIND_PATTERNS",
    "AudioChunk",
    "Backend",
    "BackendError",
    "SynthesisRequest",
    "Voice",
    "create_backend",
    "kind_for_name",
]
