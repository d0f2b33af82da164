"""Configuration: config.toml documents the defaults, values are validated, env overrides."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from gateway.backends.settings import KokoroOnnxSettings
from gateway.config import Config, ConfigError, load_config
from gateway.core.protocol import AudioFormat

REPO = Path(__file__).resolve().parent.parent


def test_repository_config_is_exactly_the_defaults() -> None:
    loaded = load_config(REPO / "config.toml", environ={})
    assert dataclasses.replace(loaded, source="<defaults>") == Config()


def test_repository_config_lists_every_setting() -> None:
    raw = tomllib.loads((REPO / "config.toml").read_text())
    defaults = Config()
    for section in ("server", "limits", "session", "segmenter", "audio", "seams"):
        names = {f.name for f in dataclasses.fields(getattr(defaults, section))}
        assert set(raw[section]) == names, section
    kokoro_names = {f.name for f in dataclasses.fields(KokoroOnnxSettings)}
    assert set(raw["backends"]["kokoro"]) == kokoro_names


def test_every_setting_line_has_a_comment() -> None:
    for line in (REPO / "config.toml").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line, f"undocumented setting: {line}"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[server]\nport = 9001\n"), environ={})
    assert config.server.port == 9001
    assert config.server.host == "127.0.0.1"
    assert config.backends == {"kokoro": KokoroOnnxSettings()}


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9001\n")
    config = load_config(
        path,
        environ={
            "TTSGW_SERVER__PORT": "9002",
            "TTSGW_AUDIO__FORMAT": "pcm16",
            "TTSGW_SEGMENTER__SHORT_FIRST_SEGMENT": "false",
            "TTSGW_BACKENDS__KOKORO__THREADS": "2",
            "TTSGW_BACKENDS__KOKORO__DEFAULT_VOICE": "jm_kumo",
            "UNRELATED": "1",
        },
    )
    assert config.server.port == 9002
    assert config.audio.format is AudioFormat.PCM16
    assert config.segmenter.short_first_segment is False
    kokoro = config.backends["kokoro"]
    assert isinstance(kokoro, KokoroOnnxSettings)
    assert (kokoro.threads, kokoro.default_voice) == (2, "jm_kumo")


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nmax_pending_chars = 77\n")
    assert load_config(environ={"TTSGW_CONFIG": str(path)}).limits.max_pending_chars == 77


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nport = 'eighty'\n", "server.port: must be an integer, got 'eighty'"),
        ("[server]\nport = 70000\n", "server.port: must be between 0 and 65535"),
        ("[server]\nprot = 1\n", "server.prot: unknown setting"),
        ("[servers]\nport = 1\n", "servers: unknown section or setting"),
        ("[audio]\nformat = 'mp3'\n", "audio.format: must be one of 'opus', 'pcm16'"),
        ("[audio]\nframe_ms = 25\n", "audio.frame_ms: must be one of (10, 20, 40, 60)"),
        ("[audio]\nbitrate = 1.5\n", "audio.bitrate: must be an integer"),
        ("[limits]\nmax_message_bytes = 0\n", "limits.max_message_bytes: must be greater"),
        ("[seams]\nlead_ms = -1\n", "seams.lead_ms: must not be negative"),
        ("[segmenter]\nmax_chars = 50\n", "segmenter.first_segment_max_chars: must not exceed"),
        ("[session]\ndefault_backend = 'piper'\n", "session.default_backend: 'piper' is not"),
        ("[backends.x]\nkind = 'nope'\n", "backends.x.kind: must be one of kokoro_onnx"),
        ("[backends.kokoro]\nkind = 'kokoro_onnx'\nthreads = -1\n", "backends.kokoro.threads"),
        ("[backends.kokoro]\nkind = 'kokoro_onnx'\nvoice = 'x'\n", "backends.kokoro.voice: un"),
        ("server = 5\n", "server: must be a table"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={})
    assert message in str(caught.value)


def test_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"limits\.max_pending_chars: must be an integer"):
        load_config(environ={"TTSGW_LIMITS__MAX_PENDING_CHARS": "lots"})
    with pytest.raises(ConfigError, match="TTSGW_<SECTION>__<KEY>"):
        load_config(environ={"TTSGW_PORT": "1"})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_serving_beyond_loopback_needs_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auth\.api_keys: the server listens on '0\.0\.0\.0'"):
        load_config(environ={"TTSGW_SERVER__HOST": "0.0.0.0"})
    keyed = load_config(
        environ={"TTSGW_SERVER__HOST": "0.0.0.0", "TTSGW_AUTH__API_KEYS": '["0123456789abcdef"]'}
    )
    assert keyed.auth_required
    assert "0123456789abcdef" not in repr(keyed)  # keys never show in a repr (or a log)
    assert not load_config(environ={}).auth_required  # loopback: open by default
    opened = load_config(environ={"TTSGW_SERVER__HOST": "0.0.0.0", "TTSGW_AUTH__REQUIRED": "no"})
    assert not opened.auth_required
    with pytest.raises(ConfigError, match="at least 16 characters"):
        load_config(environ={"TTSGW_AUTH__API_KEYS": '["short"]'})
    with pytest.raises(ConfigError, match=r"auth.api_keys\[0\]: must be a string"):
        load_config(environ={"TTSGW_AUTH__API_KEYS": "[1]"})


def test_a_fallback_must_be_another_configured_backend(tmp_path: Path) -> None:
    text = "[backends.kokoro]\nkind = 'kokoro_onnx'\nfallback = 'kokoro'\n"
    with pytest.raises(ConfigError, match=r"backends\.kokoro\.fallback: 'kokoro' must"):
        load_config(write(tmp_path, text), environ={})
