"""Typed settings for each kind of backend, as read from ``[backends.<name>]`` in config.toml.

Kept free of heavy imports so that loading the configuration never loads a model runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BackendSettings", "EspeakSettings", "KokoroOnnxSettings", "PiperSettings"]


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

    def __post_init__(self) -> None:
        BackendSettings.__post_init__(self)
        if self.threads < 0:
            raise ValueError("threads: must be 0 (all cores) or a positive number")


@dataclass(frozen=True, slots=True)
class EspeakSettings(BackendSettings):
    """espeak-ng through the library bundled by espeakng-loader.

    ``max_concurrency`` engines are loaded, each a private copy of the library (espeak-ng keeps
    process-global state, so one copy synthesizes one request at a time).
    """

    kind: str = "espeak"
    max_concurrency: int = 2
    default_voice: str = "auto"
    default_lang: str = "en-us"
    variant: str = ""
    rate_wpm: int = 175
    pitch: int = 50
    max_buffered_s: float = 30.0

    def __post_init__(self) -> None:
        BackendSettings.__post_init__(self)
        if not 80 <= self.rate_wpm <= 450:
            raise ValueError(f"rate_wpm: must be between 80 and 450, got {self.rate_wpm}")
        if not 0 <= self.pitch <= 100:
            raise ValueError(f"pitch: must be between 0 and 100, got {self.pitch}")
        if self.max_buffered_s <= 0:
            raise ValueError(f"max_buffered_s: must be greater than 0, got {self.max_buffered_s}")


@dataclass(frozen=True, slots=True)
class PiperSettings(BackendSettings):
    """Piper voices (piper-tts) through ONNX Runtime."""

    kind: str = "piper"
    model_path: str = ""
    voice_dirs: tuple[str, ...] = ()
    default_voice: str = "en_US-joe-medium"
    default_lang: str = "en-us"
    threads: int = 0
    word_timing: bool = True

    def __post_init__(self) -> None:
        BackendSettings.__post_init__(self)
        if self.threads < 0:
            raise ValueError("threads: must be 0 (all cores) or a positive number")
