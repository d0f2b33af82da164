"""Configuration of the remote backends and of the cost section.

The remote backends appear in config.toml as commented-out examples (they need a server or a
key); these tests uncomment them and check that they load, list every setting and match the
defaults, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from gateway.backends import create_backend
from gateway.backends.settings import (
    AllTalkSettings,
    BackendSettings,
    ElevenLabsSettings,
    ElevenLabsTransport,
    OpenAISettings,
)
from gateway.config import Config, ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "openai": OpenAISettings,
    "alltalk_local": AllTalkSettings,
    "elevenlabs": ElevenLabsSettings,
}
FAILURE_SETTINGS = {
    "connect_timeout_s", "first_byte_timeout_s", "read_timeout_s", "max_attempts",
    "backoff_base_s", "backoff_max_s", "max_retry_after_s", "max_concurrency", "warmup",
}  # fmt: skip


def example_tables() -> str:
    """The commented-out examples of the remote backends in config.toml, uncommented."""
    lines = (REPO / "config.toml").read_text().splitlines()
    out, inside = [], False
    for line in lines:
        header = re.match(r"# \[backends\.(\w+)\]", line)
        if header:
            inside = header[1] in EXAMPLES
        elif not line.startswith("# ") or line.startswith("#  "):
            inside = False
        if inside:
            out.append(line[2:])
    return "\n".join(out)


def test_cost_section_lists_every_setting() -> None:
    raw = tomllib.loads((REPO / "config.toml").read_text())
    names = {f.name for f in dataclasses.fields(Config().cost)}
    assert set(raw["cost"]) == names


def test_the_documented_examples_load_and_match_the_defaults(tmp_path: Path) -> None:
    text = example_tables()
    assert text.count("[backends.") == 3
    path = tmp_path / "config.toml"
    path.write_text('[session]\ndefault_backend = "openai"\n' + text)
    config = load_config(path, environ={})
    raw = tomllib.loads(text)["backends"]
    whole = (REPO / "config.toml").read_text()
    # Settings every backend has, and the failure settings, are documented once for all.
    common = {f.name for f in dataclasses.fields(BackendSettings)} - {"kind"} | FAILURE_SETTINGS
    for name in common:
        assert re.search(rf"^#? *{name} = ", whole, re.MULTILINE), name
    for name, settings_type in EXAMPLES.items():
        settings = config.backends[name]
        assert isinstance(settings, settings_type)
        every = {f.name for f in dataclasses.fields(settings_type)}
        assert set(raw[name]) | common == every, name
        if name != "alltalk_local":  # the AllTalk example shows a voice map
            assert settings == settings_type(), name
    alltalk = config.backends["alltalk_local"]
    assert isinstance(alltalk, AllTalkSettings)
    assert alltalk.voice_map == {"alloy": "female_01.wav", "onyx": "male_01.wav"}
    assert dataclasses.replace(alltalk, voice_map={}) == AllTalkSettings()


def test_remote_backends_are_built_from_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[backends.kokoro]\nkind = "kokoro_onnx"\n'
        '[backends.el]\nkind = "elevenlabs"\ntransport = "http"\nvoices = ["a", "b"]\n'
        "chunk_length_schedule = [50, 100]\n"
        '[backends.oa]\nkind = "openai"\nmodel = "tts-1"\nbase_url = "http://127.0.0.1:1"\n'
    )
    config = load_config(path, environ={"TTSGW_BACKENDS__OA__VOICES": '["alloy", "x"]'})
    el = config.backends["el"]
    assert isinstance(el, ElevenLabsSettings)
    assert el.transport is ElevenLabsTransport.HTTP
    assert (el.voices, el.chunk_length_schedule) == (("a", "b"), (50, 100))
    oa = config.backends["oa"]
    assert isinstance(oa, OpenAISettings)
    assert oa.voices == ("alloy", "x")
    for name in ("el", "oa"):
        backend = create_backend(name, config.backends[name])
        assert backend.name == name
        assert backend.sample_rate == 24000


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('kind = "openai"\nbase_url = "api.openai.com"\n', "base_url: must start with http"),
        ('kind = "openai"\nvoices = "alloy"\n', "voices: must be a list"),
        ('kind = "openai"\nvoices = [1]\n', "voices[0]: must be a string"),
        ('kind = "openai"\ndefault_voice = "bob"\n', "default_voice: 'bob' is not in voices"),
        ('kind = "openai"\nmodel = "tts-1"\ninstructions = "x"\n', "does not take instructions"),
        ('kind = "openai"\napi_key_env = "MY KEY"\n', "api_key_env: 'MY KEY' is not"),
        ('kind = "openai"\nmax_attempts = 0\n', "max_attempts: must be at least 1"),
        ('kind = "openai"\nbackoff_max_s = 0.1\n', "backoff_max_s: must not be below"),
        ('kind = "openai"\ndefault_lang = "tlh"\n', "default_lang: 'tlh' is not in languages"),
        ('kind = "alltalk"\nvoice_map = { robot = "x.wav" }\n', "voice_map: 'robot' is not one"),
        ('kind = "alltalk"\nvoice_map = { alloy = 3 }\n', "voice_map.alloy: must be a string"),
        ('kind = "alltalk"\nvoice_map = "alloy=x"\n', "voice_map: must be a table"),
        ('kind = "alltalk"\ndefault_voice = "x.wav"\n', "default_voice: 'x.wav' is neither"),
        ('kind = "elevenlabs"\ntransport = "grpc"\n', "transport: must be one of 'websocket'"),
        ('kind = "elevenlabs"\nstability = 2.0\n', "stability: must be between 0 and 1"),
        ('kind = "elevenlabs"\nchunk_length_schedule = [10]\n', "values must be 50 to 500"),
    ],
)
def test_bad_remote_settings_name_the_key(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[backends.kokoro]\nkind = 'kokoro_onnx'\n[backends.remote]\n" + table)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value).startswith("backends.remote.")
    assert message in str(caught.value)


def test_api_keys_stay_out_of_reprs() -> None:
    secret = "sk-very-secret-value-123"
    for settings in (OpenAISettings(api_key=secret), ElevenLabsSettings(api_key=secret)):
        assert secret not in repr(settings)
        assert settings.api_key == secret
    config = Config(
        backends={"kokoro": Config().backends["kokoro"], "oa": OpenAISettings(api_key=secret)}
    )
    assert secret not in repr(config)
