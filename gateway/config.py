"""Typed gateway configuration: one ``config.toml``, validated at load, environment overrides.

Every setting has a default here and the same default, with a comment, in the repository's
``config.toml``. A value of the wrong type or out of range is a :class:`ConfigError` that names
the key. Environment variables ``TTSGW_<SECTION>__<KEY>`` (``__`` between levels, any case)
override the file, e.g. ``TTSGW_SERVER__PORT=9000`` or ``TTSGW_BACKENDS__KOKORO__THREADS=2``;
their values are read as TOML values when they parse as one, as plain strings otherwise.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from gateway.backends.registry import BACKEND_SETTINGS, KIND_PATTERNS, kind_for_name
from gateway.backends.settings import (
    BackendSettings,
    EspeakSettings,
    KokoroOnnxSettings,
    PiperSettings,
)
from gateway.core.cost import CostSettings
from gateway.core.elevenlabs_alignment import AlignmentTimes
from gateway.core.errors import ConfigError
from gateway.core.lexicon import LexiconEntry, PronunciationLexicon, parse_entries
from gateway.core.protocol import OPUS_FRAME_MS, AudioFormat
from gateway.core.segmenter import SegmenterConfig
from gateway.core.textnorm import Settings as NormalizationSettings

__all__ = [
    "BACKEND_SETTINGS",
    "AudioSettings",
    "AuthSettings",
    "ClusterSettings",
    "Config",
    "ConfigError",
    "CostSettings",
    "ElevenLabsApiSettings",
    "LimitsSettings",
    "ReadingSettings",
    "RestSettings",
    "SeamSettings",
    "ServerSettings",
    "SessionSettings",
    "load_config",
    "with_server",
]

ENV_PREFIX: Final = "TTSGW_"
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})
CONFIG_ENV: Final = "TTSGW_CONFIG"


def default_backends() -> dict[str, BackendSettings]:
    """The backends configured when config.toml has no ``[backends]`` table."""
    return {"kokoro": KokoroOnnxSettings(), "espeak": EspeakSettings(), "piper": PiperSettings()}


class OpusVbr(enum.StrEnum):
    ON = "on"
    OFF = "off"
    CONSTRAINED = "constrained"


class OpusApplication(enum.StrEnum):
    VOIP = "voip"
    AUDIO = "audio"
    LOWDELAY = "lowdelay"


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name}: must be greater than 0, got {value}")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    log_level: str = "info"
    shutdown_timeout_s: float = 10.0
    metrics: bool = True  # serve GET /metrics (Prometheus text format)
    allowed_hosts: tuple[str, ...] = ()  # Host header names served; empty: the listen address's
    header_timeout_s: float = 10.0  # an HTTP request head must arrive within this
    read_timeout_s: float = 30.0  # a request body must arrive within this
    max_connections: int = 1024  # open TCP connections; more are refused at once

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: must be between 0 and 65535, got {self.port}")
        if self.log_level not in ("critical", "error", "warning", "info", "debug"):
            raise ValueError(f"log_level: unknown level {self.log_level!r}")
        for name in ("shutdown_timeout_s", "header_timeout_s", "read_timeout_s",
                     "max_connections"):  # fmt: skip
            _positive(name, getattr(self, name))
        if any(not host.strip() for host in self.allowed_hosts):
            raise ValueError("allowed_hosts: names must not be empty")

    @property
    def on_loopback(self) -> bool:
        """Whether the server listens on a loopback address only."""
        return self.host in LOOPBACK_HOSTS


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    max_message_bytes: int = 65536
    max_pending_chars: int = 100000
    max_pending_flushes: int = 64
    max_heard_chars: int = 100000
    max_messages_per_s: float = 200.0
    max_message_burst: int = 400
    max_sessions: int = 256
    max_sessions_per_key: int = 32
    max_buffer_ahead_s: float = 8.0
    slow_client_grace_s: float = 10.0
    handshake_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    backend_timeout_s: float = 30.0
    start_timeout_s: float = 30.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    # New sessions per API key: a sustained rate per minute (0: no limit) and a burst above it.
    session_rate_per_key_per_min: float = 0.0
    session_burst_per_key: int = 10
    max_send_buffer_bytes: int = 2097152

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name == "session_rate_per_key_per_min":
                if self.session_rate_per_key_per_min < 0:
                    raise ValueError(f"{f.name}: must be 0 (no limit) or a rate per minute")
                continue
            _positive(f.name, getattr(self, f.name))
        if self.max_send_buffer_bytes < self.largest_server_message_bytes + 131072:
            raise ValueError(
                f"max_send_buffer_bytes: must hold the largest server message "
                f"({self.largest_server_message_bytes} bytes at these limits) and 128 KiB more"
            )

    @property
    def largest_server_message_bytes(self) -> int:
        """The most a server message can take: `cancelled` with all its texts (protocol.md,
        section 1), at 4 UTF-8 bytes a character."""
        return 4 * (self.max_pending_chars + self.max_heard_chars) + 1024


@dataclass(frozen=True, slots=True)
class SessionSettings:
    default_backend: str = "kokoro"
    max_buffer_delay_ms: int = 3000
    progress_interval_ms: int = 250
    adaptive_chunking: bool = True
    latency_target_ms: int = 400
    max_merged_chars: int = 300

    def __post_init__(self) -> None:
        if self.max_buffer_delay_ms < 0:
            raise ValueError("max_buffer_delay_ms: must be 0 (off) or positive")
        if self.progress_interval_ms < 10:
            raise ValueError("progress_interval_ms: must be at least 10")
        _positive("latency_target_ms", self.latency_target_ms)
        _positive("max_merged_chars", self.max_merged_chars)


@dataclass(frozen=True, slots=True)
class AudioSettings:
    format: AudioFormat = AudioFormat.OPUS
    sample_rate: int = 24000
    frame_ms: int = 20
    bitrate: int = 40000
    vbr: OpusVbr = OpusVbr.CONSTRAINED
    application: OpusApplication = OpusApplication.VOIP
    complexity: int = 1
    encode_threads: int = 2

    def __post_init__(self) -> None:
        if self.encode_threads < 0:
            raise ValueError(f"encode_threads: must be 0 or more, got {self.encode_threads}")
        if self.sample_rate != 24000:
            raise ValueError("sample_rate: this version streams at 24000 Hz only")
        if self.frame_ms not in OPUS_FRAME_MS:
            raise ValueError(f"frame_ms: must be one of {OPUS_FRAME_MS}, got {self.frame_ms}")
        if not 6000 <= self.bitrate <= 256000:
            raise ValueError(f"bitrate: must be between 6000 and 256000, got {self.bitrate}")
        if not 0 <= self.complexity <= 10:
            raise ValueError(f"complexity: must be between 0 and 10, got {self.complexity}")


@dataclass(frozen=True, slots=True)
class SeamSettings:
    lead_ms: float = 15.0
    sentence_pause_ms: float = 320.0
    line_pause_ms: float = 400.0
    clause_pause_ms: float = 150.0
    word_pause_ms: float = 0.0
    fade_ms: float = 4.0
    crossfade_ms: float = 8.0
    silence_db: float = -50.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name != "silence_db" and getattr(self, f.name) < 0:
                raise ValueError(f"{f.name}: must not be negative")
        if self.silence_db >= 0:
            raise ValueError("silence_db: must be below 0 dBFS")


# OpenAI's speech models: in a request to POST /v1/audio/speech they mean the default backend.
OPENAI_MODELS: Final = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
# OpenAI's voice names (the default of most examples is "alloy") -> voices of the default backend,
# the bundled Kokoro: its four female voices and one male voice, and blends of them where OpenAI
# has more voices of a kind, so that no two names sound the same.
OPENAI_VOICES: Final = {
    "alloy": "jf_alpha",
    "ash": "jm_kumo",
    "ballad": "jm_kumo(3)+jf_tebukuro(1)",
    "cedar": "jm_kumo(3)+jf_nezumi(1)",
    "coral": "jf_nezumi",
    "echo": "jm_kumo(3)+jf_alpha(1)",
    "fable": "jm_kumo(3)+jf_gongitsune(1)",
    "marin": "jf_gongitsune(1)+jf_nezumi(1)",
    "nova": "jf_gongitsune",
    "onyx": "jm_kumo(4)+jf_tebukuro(1)",
    "sage": "jf_tebukuro",
    "shimmer": "jf_alpha(1)+jf_tebukuro(1)",
    "verse": "jm_kumo(2)+jf_alpha(1)",
}


@dataclass(frozen=True, slots=True)
class RestSettings:
    """The OpenAI-compatible REST API (``POST /v1/audio/speech``, ``POST /v1/estimate``)."""

    max_input_chars: int = 4096
    openai_models: tuple[str, ...] = OPENAI_MODELS
    voice_aliases: Mapping[str, str] = field(default_factory=lambda: dict(OPENAI_VOICES))
    bitrate: int = 64000

    def __post_init__(self) -> None:
        _positive("max_input_chars", self.max_input_chars)
        if not 8000 <= self.bitrate <= 320000:
            raise ValueError(f"bitrate: must be between 8000 and 320000, got {self.bitrate}")
        for alias, voice in self.voice_aliases.items():
            if not alias or not voice:
                raise ValueError("voice_aliases: names and voices must not be empty")


# ElevenLabs' premade voices (their voice_ids, which client libraries use as defaults) -> voices
# of the default backend, the bundled Kokoro: women to its four female voices, men to its male
# voice, blended with a female one where a name would otherwise repeat.
ELEVENLABS_VOICES: Final = {
    "21m00Tcm4TlvDq8ikWAM": "jf_alpha",  # Rachel
    "AZnzlk1XvdvUeBnXmlld": "jf_nezumi",  # Domi
    "EXAVITQu4vr4xnSDxMaL": "jf_gongitsune",  # Sarah (formerly Bella)
    "MF3mGyEYCv7XYnRGHXs8": "jf_tebukuro",  # Elli
    "hpp4J3VqNfWAUOO0d1Us": "jf_alpha(1)+jf_gongitsune(1)",  # Bella (LiveKit's default)
    "XB0fDUnXU5powFXDhCwa": "jf_alpha(1)+jf_nezumi(1)",  # Charlotte
    "pFZP5JQG7iQjIQuC4Bku": "jf_gongitsune(1)+jf_tebukuro(1)",  # Lily
    "cgSgspJ2msm6clMCkdW9": "jf_nezumi(1)+jf_tebukuro(1)",  # Jessica
    "9BWtsMINqrJLrRacOk9x": "jf_alpha(1)+jf_tebukuro(1)",  # Aria
    "FGY2WhTYpPnrIDTdsKH5": "jf_gongitsune(1)+jf_nezumi(1)",  # Laura
    "Xb7hH8MSUJpSbSDYk0k2": "jf_alpha(2)+jf_nezumi(1)",  # Alice
    "pNInz6obpgDQGcFmaJgB": "jm_kumo",  # Adam
    "ErXwobaYiN019PkySvjV": "jm_kumo(3)+jf_alpha(1)",  # Antoni
    "TxGEqnHWrfWFTfGW9XjX": "jm_kumo(3)+jf_nezumi(1)",  # Josh
    "VR6AewLTigWG4xSOukaG": "jm_kumo(4)+jf_tebukuro(1)",  # Arnold
    "yoZ06aMxZJJ28mfd3POQ": "jm_kumo(3)+jf_gongitsune(1)",  # Sam
    "JBFqnCBsd6RMkjVDRZzb": "jm_kumo(4)+jf_alpha(1)",  # George
    "onwK4e9ZLuTAKqWW03F9": "jm_kumo(4)+jf_nezumi(1)",  # Daniel
    "nPczCjzI2devNBz1zQrb": "jm_kumo(4)+jf_gongitsune(1)",  # Brian
    "CwhRBWXzGAHq8TQ4Fs17": "jm_kumo(3)+jf_tebukuro(1)",  # Roger
    "IKne3meq5aSn9XLyUdCD": "jm_kumo(2)+jf_alpha(1)",  # Charlie
    "N2lVS1w4EtoT3dr4eOWO": "jm_kumo(2)+jf_nezumi(1)",  # Callum
    "TX3LPaxmHKxFdv7VOQHJ": "jm_kumo(2)+jf_gongitsune(1)",  # Liam
    "bIHbv24MWmeRgasZH58o": "jm_kumo(2)+jf_tebukuro(1)",  # Will
    "cjVigY5qzO86Huf0OWal": "jm_kumo(5)+jf_alpha(1)",  # Eric
    "iP95p4xoKVk53GoZ742B": "jm_kumo(5)+jf_nezumi(1)",  # Chris
    "SAz9YHcvj6GT2YYXdXww": "jm_kumo(1)+jf_alpha(1)",  # River
}


@dataclass(frozen=True, slots=True)
class ElevenLabsApiSettings:
    """The ElevenLabs-compatible WebSockets (``/v1/text-to-speech/{voice_id}/stream-input`` and
    ``.../multi-stream-input``, docs/elevenlabs.md)."""

    enabled: bool = True
    backend: str = ""  # the backend when model_id names none; "": session.default_backend
    max_contexts: int = 5
    alignment_times: AlignmentTimes = AlignmentTimes.SPLIT
    max_message_ms: int = 500
    voice_ids: Mapping[str, str] = field(default_factory=lambda: dict(ELEVENLABS_VOICES))

    def __post_init__(self) -> None:
        if not 1 <= self.max_contexts <= 100:
            raise ValueError(f"max_contexts: must be 1 to 100, got {self.max_contexts}")
        if not 20 <= self.max_message_ms <= 5000:
            raise ValueError(f"max_message_ms: must be 20 to 5000, got {self.max_message_ms}")
        for voice_id, voice in self.voice_ids.items():
            if not voice_id or not voice:
                raise ValueError("voice_ids: ids and voices must not be empty")


@dataclass(frozen=True, slots=True)
class ReadingSettings:
    """How text is read (gateway/core/textnorm, gateway/core/lexicon): the normalization
    settings, the gateway's pronunciation lexicon and one per API key (by key id: the first 8
    hex digits of the key's SHA-256, as the logs name keys)."""

    date_order: str = ""  # "": the language's order
    emoji: str = "drop"
    code_blocks: str = "announce"
    acronyms: tuple[str, ...] = ()
    initialisms: tuple[str, ...] = ()
    letter_style: str = "hyphen"
    speller: str = "num2words"
    lexicon: tuple[Mapping[str, str], ...] = ()
    key_lexicons: Mapping[str, tuple[Mapping[str, str], ...]] = field(default_factory=dict)
    entries: tuple[LexiconEntry, ...] = field(default=(), init=False, repr=False)
    key_entries: Mapping[str, tuple[LexiconEntry, ...]] = field(
        default_factory=dict, init=False, repr=False
    )
    normalization: NormalizationSettings = field(
        default_factory=NormalizationSettings, init=False, repr=False
    )

    def __post_init__(self) -> None:
        try:
            settings = NormalizationSettings(
                date_order=self.date_order or None,  # type: ignore[arg-type]
                emoji=self.emoji,  # type: ignore[arg-type]
                code_blocks=self.code_blocks,  # type: ignore[arg-type]
                acronyms=frozenset(self.acronyms),
                initialisms=frozenset(self.initialisms),
                letter_style=self.letter_style,  # type: ignore[arg-type]
                speller=self.speller,  # type: ignore[arg-type]
            )
        except ValueError as exc:
            raise ValueError(str(exc).replace("(None, ", "('', ")) from None
        object.__setattr__(self, "normalization", settings)
        object.__setattr__(self, "entries", parse_entries("lexicon", self.lexicon))
        by_key = {
            key: parse_entries(f"key_lexicons.{key}", entries)
            for key, entries in self.key_lexicons.items()
        }
        object.__setattr__(self, "key_entries", by_key)

    def lexicon_for(
        self, key_id: str | None, session: tuple[LexiconEntry, ...] = ()
    ) -> PronunciationLexicon:
        """The layers in precedence order: the session's, the key's, the gateway's."""
        key = self.key_entries.get(key_id, ()) if key_id else ()
        return PronunciationLexicon((*session, *key, *self.entries))


class AuthRequired(enum.StrEnum):
    AUTO = "auto"  # required unless the server listens on loopback only
    YES = "yes"
    NO = "no"


@dataclass(frozen=True, slots=True)
class AuthSettings:
    required: AuthRequired = AuthRequired.AUTO
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # secrets: never in a repr
    allowed_origins: tuple[str, ...] = ()
    token_ttl_s: float = 300.0
    first_message_timeout_s: float = 5.0
    # Secrets that sign tokens (the first signs, every one verifies: rotation); the same on
    # every replica. Empty: a random secret per process (tokens valid only where issued).
    token_secrets: tuple[str, ...] = field(default=(), repr=False)
    max_unauthenticated: int = 16  # sockets waiting for an `auth` message, apart from sessions

    def __post_init__(self) -> None:
        for key in self.api_keys:
            if len(key) < 16:
                raise ValueError("api_keys: every key must have at least 16 characters")
        for secret in self.token_secrets:
            if len(secret) < 32:
                raise ValueError("token_secrets: every secret must have at least 32 characters")
        _positive("token_ttl_s", self.token_ttl_s)
        _positive("first_message_timeout_s", self.first_message_timeout_s)
        _positive("max_unauthenticated", self.max_unauthenticated)


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """Several replicas behind a balancer: what they share (Redis) and when one sends new
    sessions elsewhere (docs/scaling.md)."""

    redis_url: str = field(default="", repr=False)  # may hold a password
    redis_timeout_s: float = 0.5
    lease_s: float = 15.0
    key_prefix: str = "ttsgw:"
    max_load: float = 0.0  # 0: never refuse for load (a gateway alone)

    def __post_init__(self) -> None:
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url: must start with redis://, rediss:// or unix://")
        _positive("redis_timeout_s", self.redis_timeout_s)
        _positive("lease_s", self.lease_s)
        if not self.key_prefix:
            raise ValueError("key_prefix: must not be empty")
        if not 0 <= self.max_load <= 1:
            raise ValueError(f"max_load: must be 0 (off) or at most 1, got {self.max_load}")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole gateway configuration."""

    server: ServerSettings = field(default_factory=ServerSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    audio: AudioSettings = field(default_factory=AudioSettings)
    seams: SeamSettings = field(default_factory=SeamSettings)
    rest: RestSettings = field(default_factory=RestSettings)
    elevenlabs_api: ElevenLabsApiSettings = field(default_factory=ElevenLabsApiSettings)
    cost: CostSettings = field(default_factory=CostSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    reading: ReadingSettings = field(default_factory=ReadingSettings)
    backends: Mapping[str, BackendSettings] = field(default_factory=default_backends)
    source: str = "<defaults>"

    @property
    def auth_required(self) -> bool:
        """Whether clients must authenticate (``auto``: unless the server is loopback-only)."""
        if self.auth.required is AuthRequired.AUTO:
            return not self.server.on_loopback
        return self.auth.required is AuthRequired.YES

    def __post_init__(self) -> None:
        if self.auth_required and not self.auth.api_keys:
            raise ValueError(
                f"auth.api_keys: the server listens on {self.server.host!r}, not only on "
                "loopback, so clients must authenticate, but no API key is configured; set "
                "auth.api_keys (or TTSGW_AUTH__API_KEYS='[\"a-long-random-key\"]'), or set "
                'auth.required = "no" to serve without authentication (not recommended)'
            )
        connections = self.limits.max_sessions + self.auth.max_unauthenticated
        if self.server.max_connections < connections:
            raise ValueError(
                f"server.max_connections: {self.server.max_connections} is fewer than "
                f"limits.max_sessions + auth.max_unauthenticated ({connections})"
            )
        for name, backend in self.backends.items():
            if backend.fallback and (
                backend.fallback == name or backend.fallback not in self.backends
            ):
                raise ValueError(
                    f"backends.{name}.fallback: {backend.fallback!r} must name another "
                    f"configured backend ({', '.join(n for n in self.backends if n != name)})"
                )
        if set(self.rest.openai_models) & set(self.backends):
            clash = sorted(set(self.rest.openai_models) & set(self.backends))[0]
            raise ValueError(
                f"rest.openai_models: {clash!r} is also the name of a backend; a request for it "
                "would be ambiguous (rename the backend or drop the model from the list)"
            )
        if self.elevenlabs_api.backend and self.elevenlabs_api.backend not in self.backends:
            raise ValueError(
                f"elevenlabs_api.backend: {self.elevenlabs_api.backend!r} is not configured "
                f"under [backends] (configured: {', '.join(self.backends) or 'none'})"
            )
        if self.session.default_backend not in self.backends:
            raise ValueError(
                f"session.default_backend: {self.session.default_backend!r} is not configured "
                f"under [backends] (configured: {', '.join(self.backends) or 'none'})"
            )


def load_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Load the configuration from ``path`` (or ``$TTSGW_CONFIG``, or built-in defaults).

    Environment overrides from ``environ`` (default ``os.environ``) are applied on top.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    source = "<defaults>"
    chosen = path or environ.get(CONFIG_ENV)
    if chosen:
        source = str(chosen)
        try:
            raw = tomllib.loads(Path(chosen).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {chosen}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    # Without a [backends] table the bundled backends are configured (and can be overridden).
    raw.setdefault("backends", {name: {} for name in default_backends()})
    _apply_environment(raw, environ)
    return _build_config(raw, source)


def with_server(config: Config, **changes: Any) -> Config:
    """``config`` with server settings changed (e.g. ``serve --host``), checked as a loaded file
    is: a :class:`ConfigError` names what is wrong."""
    try:
        server = dataclasses.replace(config.server, **changes)
    except ValueError as exc:
        raise ConfigError(f"server.{exc}") from None
    try:
        return dataclasses.replace(config, server=server)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == CONFIG_ENV:
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if len(keys) < 2:
            raise ConfigError(f"{name}: expected {ENV_PREFIX}<SECTION>__<KEY>")
        table = raw
        for key in keys[:-1]:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{name}: {key!r} is not a table")
        table[keys[-1]] = _parse_env_value(value)


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _build_config(raw: dict[str, Any], source: str) -> Config:
    sections: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        if f.name in ("source", "backends"):
            continue
        table = _table(raw.pop(f.name, {}), f.name)
        sections[f.name] = _build(_resolved_type(Config, f.name), table, f.name)
    backends = _build_backends(raw.pop("backends"))
    if raw:
        raise ConfigError(f"{next(iter(raw))}: unknown section or setting")
    try:
        return Config(**sections, backends=backends, source=source)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _build_backends(raw: Any) -> dict[str, BackendSettings]:
    table = _table(raw, "backends")
    backends: dict[str, BackendSettings] = {}
    for name, entry in table.items():
        where = f"backends.{name}"
        entry = dict(_table(entry, where))
        if "kind" not in entry:
            # The name implies the kind: [backends.piper_amy] is a piper backend.
            entry["kind"] = kind_for_name(name)
            if entry["kind"] is None:
                raise ConfigError(
                    f"{where}.kind: missing, and the name matches none of "
                    f"{', '.join(KIND_PATTERNS)}; set kind = one of {', '.join(BACKEND_SETTINGS)}"
                )
        kind = entry["kind"]
        settings_type = BACKEND_SETTINGS.get(kind) if isinstance(kind, str) else None
        if settings_type is None:
            raise ConfigError(
                f"{where}.kind: must be one of {', '.join(BACKEND_SETTINGS)}, got {kind!r}"
            )
        backends[name] = _build(settings_type, entry, where)
    return backends


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table")
    return value


T = TypeVar("T")


def _build(cls: type[T], table: Mapping[str, Any], where: str) -> T:
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for key in table:
        if key not in names:
            raise ConfigError(f"{where}.{key}: unknown setting")
    values = {
        key: _coerce(_resolved_type(cls, key), value, f"{where}.{key}")
        for key, value in table.items()
    }
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def _resolved_type(cls: type[Any], name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _coerce(expected: Any, value: Any, where: str) -> Any:
    if isinstance(expected, type) and issubclass(expected, enum.Enum):
        try:
            return expected(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in expected)
            raise ConfigError(f"{where}: must be one of {choices}, got {value!r}") from None
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be an integer, got {value!r}")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, got {value!r}")
        return value
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: must be a list, got {value!r}")
        return tuple(_coerce(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin in (dict, Mapping, collections.abc.Mapping) and args and args[0] is str:
        table = _table(value, where)
        item_type = args[1]
        if isinstance(item_type, type) and dataclasses.is_dataclass(item_type):
            return {
                key: _build(item_type, _table(item, f"{where}.{key}"), f"{where}.{key}")
                for key, item in table.items()
            }
        return {key: _coerce(item_type, item, f"{where}.{key}") for key, item in table.items()}
    raise ConfigError(f"{where}: unsupported setting type {expected}")  # pragma: no cover
