"""The backend registry: one row per kind of backend.

A row says everything the gateway knows about a kind before building one: its typed settings
(``[backends.<name>]`` in config.toml), the class that builds it (imported lazily, so
configuring a backend never imports a runtime that the process does not use), the instance
names that imply it, and whether it bills per use. Adding a backend kind is one row here.

A ``[backends.<name>]`` table may leave out ``kind``: the name then picks it through the rows'
name patterns (glob patterns, the most specific match wins), so several instances of one kind
can be configured by name alone (``[backends.piper_amy]``, ``[backends.espeak_fr]``). An
explicit ``kind`` always wins.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from gateway.backends.settings import (
    AllTalkSettings,
    BackendSettings,
    ChatterboxSettings,
    ElevenLabsSettings,
    EspeakSettings,
    GatewaySettings,
    KokoroOnnxSettings,
    KokoroTorchSettings,
    OpenAISettings,
    PiperSettings,
)
from gateway.core.cost import PriceKey
from gateway.core.errors import BackendError

if TYPE_CHECKING:
    from gateway.backends.base import Backend

__all__ = [
    "BACKEND_FACTORIES",
    "BACKEND_SETTINGS",
    "KINDS",
    "KIND_PATTERNS",
    "BackendKind",
    "create_backend",
    "is_hosted",
    "kind_for_name",
    "price_key",
    "settings_price_key",
]

BackendFactory = Callable[[str, BackendSettings], "Backend"]


@dataclass(frozen=True, slots=True)
class BackendKind:
    """One kind of backend. ``builder`` is ``"module:Class"``; the class takes
    ``(name, settings)``. ``hosted``: a provider bills each use (its price must be known)."""

    kind: str
    settings: type[BackendSettings]
    builder: str
    name_pattern: str
    hosted: bool = False

    def build(self, name: str, settings: BackendSettings) -> Backend:
        """The backend ``[backends.<name>]`` configures (its engine imported now)."""
        if not isinstance(settings, self.settings):
            raise BackendError(f"backends.{name}: settings of kind {settings.kind!r}")
        module, _, cls = self.builder.partition(":")
        backend: Backend = getattr(importlib.import_module(module), cls)(name, settings)
        return backend


KINDS: Final = (
    BackendKind("kokoro_onnx", KokoroOnnxSettings, "gateway.backends.kokoro_onnx:KokoroOnnxBackend",
                "kokoro*"),
    BackendKind("kokoro_torch", KokoroTorchSettings,
                "gateway.backends.kokoro_torch:KokoroTorchBackend", "kokoro_torch*"),
    BackendKind("chatterbox", ChatterboxSettings, "gateway.backends.chatterbox:ChatterboxBackend",
                "chatterbox*"),
    BackendKind("openai", OpenAISettings, "gateway.backends.openai_speech:OpenAIBackend",
                "openai*", hosted=True),
    BackendKind("alltalk", AllTalkSettings, "gateway.backends.alltalk:AllTalkBackend",
                "alltalk_*"),
    BackendKind("elevenlabs", ElevenLabsSettings, "gateway.backends.elevenlabs:ElevenLabsBackend",
                "elevenlabs*", hosted=True),
    BackendKind("espeak", EspeakSettings, "gateway.backends.espeak:EspeakBackend", "espeak*"),
    BackendKind("piper", PiperSettings, "gateway.backends.piper:PiperBackend", "piper*"),
    BackendKind("gateway", GatewaySettings, "gateway.backends.gateway:GatewayBackend", "gateway*"),
)  # fmt: skip

_BY_KIND: Final = {row.kind: row for row in KINDS}
# Views of the rows, for the configuration and for readers that want one fact of every kind.
BACKEND_SETTINGS: Final[dict[str, type[BackendSettings]]] = {r.kind: r.settings for r in KINDS}
BACKEND_FACTORIES: Final[dict[str, BackendFactory]] = {r.kind: r.build for r in KINDS}
# Instance name pattern -> kind, for tables without ``kind``.
KIND_PATTERNS: Final[dict[str, str]] = {r.name_pattern: r.kind for r in KINDS}


def kind_for_name(name: str) -> str | None:
    """The kind a backend instance named ``name`` has by default, if a pattern matches.

    Among matching patterns the longest (most specific) wins, so ``kokoro_torch*`` beats
    ``kokoro*``. Matching is case-sensitive.
    """
    matches = [pattern for pattern in KIND_PATTERNS if fnmatch.fnmatchcase(name, pattern)]
    if not matches:
        return None
    return KIND_PATTERNS[max(matches, key=len)]


def is_hosted(kind: str) -> bool:
    """Whether backends of ``kind`` bill per use (unknown kinds, e.g. test engines: no)."""
    row = _BY_KIND.get(kind)
    return row is not None and row.hosted


def price_key(backend: Backend) -> PriceKey:
    """What ``backend``'s price is looked up by."""
    kind = backend.kind
    return PriceKey(backend.name, kind, backend.model, hosted=is_hosted(kind))


def settings_price_key(name: str, settings: BackendSettings) -> PriceKey:
    """What the price of the backend ``[backends.<name>]`` configures is looked up by."""
    return PriceKey(name, settings.kind, settings.billed_model, hosted=is_hosted(settings.kind))


def create_backend(name: str, settings: BackendSettings) -> Backend:
    """Build the backend configured as ``[backends.<name>]``."""
    row = _BY_KIND.get(settings.kind)
    if row is None:
        raise BackendError(f"backends.{name}: no backend of kind {settings.kind!r}")
    return row.build(name, settings)
