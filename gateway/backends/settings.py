"""Typed settings for each kind of backend, as read from ``[backends.<name>]`` in config.toml.

Kept free of heavy imports so that loading the configuration never loads a model runtime.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gateway.core.scheduling import Policy
from gateway.core.voice_blend import VoiceBlendError, parse_blend

__all__ = [
    "AllTalkSettings",
    "BackendSettings",
    "ChatterboxSettings",
    "ElevenLabsSettings",
    "ElevenLabsTransport",
    "EspeakSettings",
    "GatewaySettings",
    "HostedSettings",
    "KokoroOnnxSettings",
    "KokoroTorchSettings",
    "OpenAISettings",
    "PiperSettings",
    "RemoteSettings",
]


@dataclass(frozen=True, slots=True)
class BackendSettings:
    """Settings every backend has."""

    kind: str
    max_concurrency: int = 1
    warmup: bool = True
    fallback: str = ""  # another backend to switch to when this one fails
    fallback_recover_s: float = 0.0  # try this backend again after that long (0: never)

    @property
    def billed_model(self) -> str | None:
        """The provider's model this backend bills as (None: a local engine)."""
        return None

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency: must be at least 1")
        if not self.fallback_recover_s >= 0:
            raise ValueError("fallback_recover_s: must be 0 (never) or a number of seconds")


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
    split_when_busy: bool = True  # while requests wait, one single-threaded inference per core
    spin_wait: bool = False
    word_timing: bool = True
    scheduling: Policy = Policy.DEADLINE
    windowed: bool = True  # prosody per sentence, audio decoded window by window
    window_precision: str = "int8"  # the windowed generator: "int8" (as shipped) or "fp32"
    first_window_ms: int = 400  # audio of a turn's first window

    def __post_init__(self) -> None:
        BackendSettings.__post_init__(self)
        _check_voice_blend(self.default_voice)
        if self.threads < 0:
            raise ValueError("threads: must be 0 (all cores) or a positive number")
        if self.window_precision not in ("int8", "fp32"):
            raise ValueError(
                f"window_precision: must be int8 or fp32, got {self.window_precision!r}"
            )
        if not 100 <= self.first_window_ms <= 2000:
            raise ValueError(f"first_window_ms: must be 100 to 2000, got {self.first_window_ms}")
        if self.split_when_busy and self.max_concurrency != 1:
            raise ValueError(
                "split_when_busy: needs max_concurrency = 1 (it runs one inference per core "
                "itself while requests wait); set split_when_busy = false to choose"
            )


def _check_voice_blend(voice: str) -> None:
    """A Kokoro ``default_voice`` is a voice or a blend; its voices are checked at load."""
    try:
        parse_blend(voice)
    except VoiceBlendError as error:
        raise ValueError(f"default_voice: {error}") from None


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
    scheduling: Policy = Policy.DEADLINE

    def __post_init__(self) -> None:
        BackendSettings.__post_init__(self)
        _check_device(self.device)
        _check_voice_blend(self.default_voice)
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


class ElevenLabsTransport(enum.StrEnum):
    """How the ElevenLabs backend talks to the service."""

    WEBSOCKET = "websocket"  # the stream-input WebSocket, with character alignment
    HTTP = "http"  # POST .../stream/with-timestamps (NDJSON), also with alignment


@dataclass(frozen=True, slots=True)
class RemoteSettings(BackendSettings):
    """What every remote (HTTP/WebSocket) backend has: where it is and how failures are handled.

    ``connect_timeout_s`` bounds connecting; ``first_byte_timeout_s`` bounds the wait from
    sending a request to its first audio; ``read_timeout_s`` bounds every later wait for more
    audio (a stalled stream). 429, 408 and 5xx answers, and connections dropped before any audio,
    are retried up to ``max_attempts`` times in all, with exponential backoff from
    ``backoff_base_s`` up to ``backoff_max_s`` (with jitter), or after the server's Retry-After
    when it is at most ``max_retry_after_s``. Keep these below the gateway's own limit on a
    silent backend, so that the backend's more specific message is the one the client sees.
    """

    base_url: str = ""
    max_input_chars: int = 4096
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 20.0
    read_timeout_s: float = 20.0
    max_attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    max_retry_after_s: float = 10.0
    warmup: bool = False
    max_concurrency: int = 4
    default_lang: str = "en-us"
    languages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        BackendSettings.__post_init__(self)
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url: must start with http:// or https://, got {self.base_url!r}"
            )
        if self.max_input_chars < 16:
            raise ValueError(f"max_input_chars: must be at least 16, got {self.max_input_chars}")
        for name in (
            "connect_timeout_s",
            "first_byte_timeout_s",
            "read_timeout_s",
            "backoff_base_s",
            "backoff_max_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be greater than 0, got {getattr(self, name)}")
        if self.max_retry_after_s < 0:
            raise ValueError("max_retry_after_s: must not be negative")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts: must be at least 1, got {self.max_attempts}")
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s: must not be below backoff_base_s")
        self._check_languages()

    def _check_languages(self) -> None:
        if not self.languages:
            raise ValueError("languages: must list at least one language")
        if self.default_lang not in self.languages:
            raise ValueError(
                f"default_lang: {self.default_lang!r} is not in languages "
                f"({', '.join(self.languages)})"
            )


# Voices of OpenAI's speech endpoint (tts-1 and tts-1-hd take the first nine).
OPENAI_VOICES = (
    "alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer",
    "ballad", "verse", "marin", "cedar",
)  # fmt: skip
# OpenAI detects the language from the text; these are the codes a session may name.
OPENAI_LANGUAGES = (
    "en-us", "en-gb", "en", "de", "es", "fr", "fr-fr", "it", "pt", "pt-br", "nl", "pl", "ru",
    "tr", "hi", "ja", "ko", "zh",
)  # fmt: skip
# The voice names AllTalk's OpenAI-compatible endpoint accepts; each maps to an engine voice.
ALLTALK_OPENAI_VOICES = ("alloy", "echo", "fable", "nova", "onyx", "shimmer")
# AllTalk's documented language codes (the XTTS set).
ALLTALK_LANGUAGES = (
    "ar", "zh-cn", "cs", "nl", "en", "fr", "de", "hi", "hu", "it", "ja", "ko", "pl", "pt",
    "ru", "es", "tr",
)  # fmt: skip
ELEVENLABS_LANGUAGES = OPENAI_LANGUAGES


def _check_api_key_env(name: str) -> None:
    if name and not name.replace("_", "").isalnum():
        raise ValueError(f"api_key_env: {name!r} is not an environment variable name")


@dataclass(frozen=True, slots=True)
class HostedSettings(RemoteSettings):
    """A provider that takes an API key and bills each request by model."""

    api_key: str = field(default="", repr=False)  # a secret: never in a repr
    api_key_env: str = ""
    model: str = ""

    @property
    def billed_model(self) -> str | None:
        return self.model

    def __post_init__(self) -> None:
        RemoteSettings.__post_init__(self)
        _check_api_key_env(self.api_key_env)
        if not self.model:
            raise ValueError("model: must not be empty")


@dataclass(frozen=True, slots=True)
class OpenAISettings(HostedSettings):
    """OpenAI's ``POST /v1/audio/speech`` (raw 24 kHz PCM), or any server that speaks it."""

    kind: str = "openai"
    base_url: str = "https://api.openai.com"
    api_key_env: str = "OPENAI_API_KEY"
    model: str = "gpt-4o-mini-tts"
    default_voice: str = "alloy"
    voices: tuple[str, ...] = OPENAI_VOICES
    list_voices: bool = False
    instructions: str = ""
    languages: tuple[str, ...] = OPENAI_LANGUAGES

    def __post_init__(self) -> None:
        HostedSettings.__post_init__(self)
        if self.default_voice not in self.voices and not self.list_voices:
            raise ValueError(f"default_voice: {self.default_voice!r} is not in voices")
        if self.instructions and not takes_instructions(self.model):
            raise ValueError(f"instructions: model {self.model!r} does not take instructions")


def takes_instructions(model: str) -> bool:
    """Whether an OpenAI speech model accepts ``instructions`` (tts-1 and tts-1-hd do not)."""
    return not model.startswith("tts-1")


@dataclass(frozen=True, slots=True)
class AllTalkSettings(RemoteSettings):
    """An AllTalk v2 server through its OpenAI-compatible endpoint.

    ``voice_map`` says which engine voice each OpenAI voice name speaks on that server
    (AllTalk keeps that mapping per engine); the mapped engine voices can then be chosen by
    their own names. With ``push_voice_map`` the map is sent to the server at start-up.
    """

    kind: str = "alltalk"
    base_url: str = "http://127.0.0.1:7851"
    max_input_chars: int = 2000
    max_concurrency: int = 1
    first_byte_timeout_s: float = 25.0  # AllTalk answers after the whole text is synthesized
    default_voice: str = "alloy"
    voice_map: dict[str, str] = field(default_factory=dict)
    push_voice_map: bool = False
    send_language: bool = True
    default_lang: str = "en"
    languages: tuple[str, ...] = ALLTALK_LANGUAGES
    ready_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        RemoteSettings.__post_init__(self)
        for name, engine_voice in self.voice_map.items():
            if name not in ALLTALK_OPENAI_VOICES:
                raise ValueError(
                    f"voice_map: {name!r} is not one of {', '.join(ALLTALK_OPENAI_VOICES)}"
                )
            if not engine_voice:
                raise ValueError(f"voice_map.{name}: must name an engine voice")
        if self.push_voice_map and set(self.voice_map) != set(ALLTALK_OPENAI_VOICES):
            raise ValueError(
                "push_voice_map: voice_map must map all of " + ", ".join(ALLTALK_OPENAI_VOICES)
            )
        known = set(ALLTALK_OPENAI_VOICES) | set(self.voice_map.values())
        if self.default_voice not in known:
            raise ValueError(
                f"default_voice: {self.default_voice!r} is neither an OpenAI voice name nor "
                "an engine voice in voice_map"
            )
        if self.ready_timeout_s <= 0:
            raise ValueError("ready_timeout_s: must be greater than 0")


@dataclass(frozen=True, slots=True)
class ElevenLabsSettings(HostedSettings):
    """ElevenLabs: the stream-input WebSocket, or its HTTP streaming endpoint."""

    kind: str = "elevenlabs"
    base_url: str = "https://api.elevenlabs.io"
    api_key_env: str = "ELEVENLABS_API_KEY"
    model: str = "eleven_flash_v2_5"
    default_voice: str = "JBFqnCBsd6RMkjVDRZzb"
    voices: tuple[str, ...] = ()
    list_voices: bool = True
    transport: ElevenLabsTransport = ElevenLabsTransport.WEBSOCKET
    http_fallback: bool = True
    stability: float = 0.5
    similarity_boost: float = 0.75
    style: float = 0.0
    use_speaker_boost: bool = True
    chunk_length_schedule: tuple[int, ...] = ()
    send_language: bool = False
    max_input_chars: int = 5000
    languages: tuple[str, ...] = ELEVENLABS_LANGUAGES

    def __post_init__(self) -> None:
        HostedSettings.__post_init__(self)
        for name in ("stability", "similarity_boost", "style"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: must be between 0 and 1, got {getattr(self, name)}")
        for size in self.chunk_length_schedule:
            if not 50 <= size <= 500:
                raise ValueError(f"chunk_length_schedule: values must be 50 to 500, got {size}")


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
    # Whisper base hears espeak-ng's words better with a short pause between them (see
    # :class:`~gateway.backends.espeak.Delivery` for the unit): on tests/test_intelligibility.py's
    # passages its word error rate was 0.126 without, 0.074 with 1 (2 did as well there, but
    # Whisper then missed the speech after a 1.5 s SSML break).
    word_gap: int = 1
    max_buffered_s: float = 30.0

    def __post_init__(self) -> None:
        BackendSettings.__post_init__(self)
        if not 80 <= self.rate_wpm <= 450:
            raise ValueError(f"rate_wpm: must be between 80 and 450, got {self.rate_wpm}")
        if not 0 <= self.pitch <= 100:
            raise ValueError(f"pitch: must be between 0 and 100, got {self.pitch}")
        if not 0 <= self.word_gap <= 100:
            raise ValueError(f"word_gap: must be between 0 and 100, got {self.word_gap}")
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
    scheduling: Policy = Policy.DEADLINE

    def __post_init__(self) -> None:
        BackendSettings.__post_init__(self)
        if self.threads < 0:
            raise ValueError("threads: must be 0 (all cores) or a positive number")


@dataclass(frozen=True, slots=True)
class GatewaySettings(RemoteSettings):
    """Upstream tts-gateways (a model tier) spoken to through their ``/v1/stream``.

    ``urls`` are the upstreams' base URLs (``http://host:port``; the stream is
    ``ws://host:port/v1/stream``), tried in turn for each call: several model replicas, or one
    balancer in front of them. ``backend`` names the upstream's backend; ``languages`` empty
    means the upstream's own list for it (read at start-up, with its voices). ``word_timing``
    says whether the upstream backend measures word timings (the upstream's estimates are not
    passed on: this gateway estimates for itself).
    """

    kind: str = "gateway"
    urls: tuple[str, ...] = ("http://127.0.0.1:8765",)
    backend: str = "kokoro"
    api_key: str = field(default="", repr=False)  # a secret: never in a repr
    api_key_env: str = ""
    default_voice: str = "jf_gongitsune"
    word_timing: bool = True
    languages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("urls: must list at least one upstream gateway")
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"urls: must start with http:// or https://, got {url!r}")
        object.__setattr__(self, "base_url", self.urls[0].rstrip("/"))
        RemoteSettings.__post_init__(self)
        _check_api_key_env(self.api_key_env)
        if not self.backend:
            raise ValueError("backend: must name the upstream's backend")

    def _check_languages(self) -> None:
        if self.languages:  # empty: the upstream's languages, learned at start-up
            RemoteSettings._check_languages(self)
