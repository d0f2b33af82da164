"""Typed settings for each kind of backend, as read from ``[backends.<name>]`` in config.toml.

Kept free of heavy imports so that loading the configuration never loads a model runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BackendSettings",
    "ChatterboxSettings",
    "KokoroOnnxSettings",
    "KokoroTorchSettings",
]


@dataclass(frozen=True, slots=True)
class BackendSettings:
    """Settings every backend has."""

    kind: str
    max_concurrency: int = 1
    warmup: bool = True
    fallback: str = ""  # another backend to switch to when this one fails

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


DEVICES = ("auto", "cpu", "cuda")


def _check_device(device: str) -> None:
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ValueError(f"device: must be auto, cpu, cuda or cuda:<index>, got {device!r}")


@dataclass(frozen=True, slots=True)
class KokoroTorchSettings(BackendSettings):
    """Kokoro-82M on PyTorch from a local checkpoint directory (extra ``torch``)."""

    kind: str = "kokoro_torch"
    checkpoint_dir: str = ""
    model_file: str = "kokoro-v1_0.pth"
    device: str = "auto"
    default_voice: str = "af_heart"
    default_lang: str = "en-us"

    def __post_init__(self) -> None:
        BackendSettings.__post_init__(self)
        _check_device(self.device)
        if not self.model_file or "/" in self.model_file:
            raise ValueError("model_file: must be a file name inside checkpoint_dir")


@dataclass(frozen=True, slots=True)
class ChatterboxSettings(BackendSettings):
    """Chatterbox (resemble-ai ``chatterbox-tts``) from a local checkpoint (extra ``chatterbox``).

    Speech is generated in chunks of speech tokens (25 tokens = 1 s of audio); each chunk is
    vocoded with ``context_tokens`` tokens before it and crossfaded into the previous one.
    """

    kind: str = "chatterbox"
    checkpoint_dir: str = ""
    voices_dir: str = ""
    device: str = "auto"
    default_voice: str = "default"
    default_lang: str = "en-us"
    exaggeration: float = 0.5
    cfg_weight: float = 0.5
    temperature: float = 0.8
    first_chunk_tokens: int = 10
    chunk_tokens: int = 25
    context_tokens: int = 50
    crossfade_ms: float = 20.0
    max_tokens: int = 1000
    watermark: bool = True

    def __post_init__(self) -> None:
        BackendSettings.__post_init__(self)
        _check_device(self.device)
        if self.max_concurrency != 1:
            raise ValueError("max_concurrency: a Chatterbox model generates one request at a time")
        if not 0.0 <= self.exaggeration <= 2.0:
            raise ValueError(f"exaggeration: must be between 0 and 2, got {self.exaggeration}")
        if not 0.0 <= self.cfg_weight <= 1.0:
            raise ValueError(f"cfg_weight: must be between 0 and 1, got {self.cfg_weight}")
        if not 0.05 <= self.temperature <= 2.0:
            raise ValueError(f"temperature: must be between 0.05 and 2, got {self.temperature}")
        for name in ("first_chunk_tokens", "chunk_tokens", "context_tokens"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name}: must be at least 2")
        # The overlap is taken from the re-vocoded context, past the vocoder's 40 ms fade-in.
        if not 0.0 <= self.crossfade_ms <= 40.0:
            raise ValueError(f"crossfade_ms: must be between 0 and 40, got {self.crossfade_ms}")
        if self.max_tokens < self.first_chunk_tokens:
            raise ValueError("max_tokens: must be at least first_chunk_tokens")
