"""Typed settings for each kind of backend, as read from ``[backends.<name>]`` in config.toml.

Kept free of heavy imports so that loading the configuration never loads a model runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BackendSettings", "KokoroOnnxSettings"]


@dataclass(frozen=True, slots=True)
class BackendSettings:
    """Settings every backend has."""

    kind: str
    max_concurrency: int = 1
    warmup: bool = True

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency: must be at least 1")


@dataclass(frozen=True, slots=True)
class KokoroOnnxSettings(BackendSettings):
    """Kokoro-82M through ONNX Runtime (kokoro-onnx)."""

    kind: str = "kokoro_onnx"
    model_path: str = ""
    voices_path: str = ""
    cache_dir: str = ""
    default_voice: str = "jf_gongitsune"
    default_lang: str = "en-us"
    threads: int = 0
    spin_wait: bool = False
    word_timing: bool = True

    def __post_init__(self) -> None:
        BackendSettings.__post_init__(self)
        if self.threads < 0:
            raise ValueError("threads: must be 0 (all cores) or a positive number")
