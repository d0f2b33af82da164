"""Configuration: config.toml documents the defaults, values are validated, env overrides."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from gateway.backends import KIND_PATTERNS, kind_for_name
from gateway.backends.settings import EspeakSettings, KokoroOnnxSettings, PiperSettings
from gateway.config import BACKEND_SETTINGS, Config, ConfigError, default_backends, load_config
from gateway.core.protocol import AudioFormat

REPO = Path(__file__).resolve().parent.parent


def test_repository_config_is_exactly_the_defaults() -> None:
    loaded = load_config(REPO / "config.toml", environ={})
    assert dataclasses.replace(loaded, source="<defaults>") == Config()


def test_repository_config_lists_every_setting() -> None:
    raw = tomllib.loads((REPO / "config.toml").read_text())
    defaults = Config()
    sections = ["server", "limits", "session", "segmenter", "audio", "seams", "rest"]
    sections.append("elevenlabs_api")
    for section in sections:
        names = {f.name for f in dataclasses.fields(getattr(defaults, section))}
        assert set(raw[section]) == names, section
    assert set(raw["backends"]) == {"kokoro", "espeak", "piper"}
    for name, table in raw["backends"].items():
        settings_type = BACKEND_SETTINGS[table["kind"]]
        assert set(table) == {f.name for f in dataclasses.fields(settings_type)}, name


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
    assert config.backends == default_backends()
    assert config.backends == {
        "kokoro": KokoroOnnxSettings(),
        "espeak": EspeakSettings(),
        "piper": PiperSettings(),
    }


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
        ("[session]\ndefault_backend = 'nope'\n", "session.default_backend: 'nope' is not"),
        ("[backends.x]\nkind = 'nope'\n", "backends.x.kind: must be one of kokoro_onnx"),
        ("[backends.kokoro]\nkind = 'kokoro_onnx'\nthreads = -1\n", "backends.kokoro.threads"),
        ("[backends.kokoro]\nkind = 'kokoro_onnx'\nvoice = 'x'\n", "backends.kokoro.voice: un"),
        ("[backends.amy]\nmodel_path = 'x'\n", "backends.amy.kind: missing, and the name"),
        ("[backends.espeak]\nrate_wpm = 20\n", "backends.espeak.rate_wpm: must be between"),
        ("[backends.espeak]\npitch = 101\n", "backends.espeak.pitch: must be between"),
        ("[backends.espeak]\nmax_buffered_s = 0\n", "backends.espeak.max_buffered_s: must"),
        ("[backends.piper]\nvoice_dirs = 'dir'\n", "backends.piper.voice_dirs: must be a list"),
        ("[backends.piper]\nvoice_dirs = [1]\n", "backends.piper.voice_dirs[0]: must be a string"),
        ("[backends.piper]\nthreads = -2\n", "backends.piper.threads: must be 0"),
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


def test_backend_kind_follows_from_the_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[backends.kokoro]\n"
        "[backends.piper_amy]\nvoice_dirs = ['~/voices']\n"
        "[backends.espeak_fr]\ndefault_lang = 'fr'\n"
        "[backends.piper_robot]\nkind = 'espeak'\n",  # an explicit kind wins
    )
    backends = load_config(path, environ={}).backends
    assert backends["kokoro"] == KokoroOnnxSettings()
    assert backends["piper_amy"] == PiperSettings(voice_dirs=("~/voices",))
    assert backends["espeak_fr"] == EspeakSettings(default_lang="fr")
    assert backends["piper_robot"] == EspeakSettings()


def test_list_settings_from_the_environment(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "[backends.kokoro]\n[backends.piper]\n"),
        environ={"TTSGW_BACKENDS__PIPER__VOICE_DIRS": "['/a', '/b']"},
    )
    piper = config.backends["piper"]
    assert isinstance(piper, PiperSettings)
    assert piper.voice_dirs == ("/a", "/b")


def test_most_specific_name_pattern_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KIND_PATTERNS, "kokoro_torch*", "kokoro_torch")
    assert kind_for_name("kokoro") == "kokoro_onnx"
    assert kind_for_name("kokoro_fast") == "kokoro_onnx"
    assert kind_for_name("kokoro_torch_gpu") == "kokoro_torch"
    assert kind_for_name("piper_amy") == "piper"
    assert kind_for_name("espeak") == "espeak"
    assert kind_for_name("Piper") is None  # case-sensitive
    assert kind_for_name("alltalk_1") == "alltalk"
    assert kind_for_name("alltalk") is None  # the pattern is alltalk_*
