"""The ``tts-gateway`` command against a real server: say -> .ogg / .wav, voices, errors."""

from __future__ import annotations

import asyncio
import json
import sys
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from tests.asr import transcribe, word_error_rate
from tests.conftest import REPO, RunningServer, timeout
from tts_gateway_client.say import llm_tokens

TEXT = "Good morning. The weather today is sunny, with a light breeze from the west."


async def run_cli(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    async with asyncio.timeout(timeout(120)):
        out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def decoded_ogg(path: Path) -> np.ndarray:
    with av.open(str(path), mode="r") as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=24000)
        parts = [
            frame.to_ndarray()[0]
            for packet_frame in container.decode(audio=0)
            for frame in resampler.resample(packet_frame)
        ]
    return np.concatenate(parts)


@pytest.mark.model
async def test_say_writes_an_ogg_that_says_the_text(server: RunningServer, tmp_path: Path) -> None:
    out = tmp_path / "speech.ogg"
    code, _, err = await run_cli("say", TEXT, "--out", str(out), "--url", server.ws_url)
    assert code == 0, err
    assert "time to first audio:" in err
    assert "real-time factor" in err
    assert f"wrote {out}" in err
    pcm = decoded_ogg(out)
    assert 3.0 < len(pcm) / 24000 < 9.0
    assert word_error_rate(TEXT, transcribe(pcm, 24000)) < 0.15


@pytest.mark.model
async def test_say_from_stdin_as_simulated_llm_to_wav(
    server: RunningServer, tmp_path: Path
) -> None:
    out = tmp_path / "speech.wav"
    code, _, err = await run_cli(
        "say", "--simulate-llm", "40", "--out", str(out), "--url", server.ws_url, "--speed",
        "1.2", "--voice", "jm_kumo", stdin=TEXT,
    )  # fmt: skip
    assert code == 0, err
    with wave.open(str(out)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    pcm = (samples / 32768).astype(np.float32)
    assert word_error_rate(TEXT, transcribe(pcm, 24000)) < 0.15
    ttfa = float(err.split("time to first audio: ")[1].split(" ms")[0])
    assert ttfa > 0


async def test_say_from_a_file_with_the_fake_backend(server: RunningServer, tmp_path: Path) -> None:
    source = tmp_path / "text.txt"
    source.write_text("One two three.\nFour five.")
    out = tmp_path / "tones.ogg"
    code, _, err = await run_cli(
        "say", "--file", str(source), "--backend", "fake", "--out", str(out),
        "--url", server.ws_url,
    )  # fmt: skip
    assert code == 0, err
    assert "characters: 25 received, 25 spoken, 0 unspoken" in err
    assert len(decoded_ogg(out)) > 24000 * 0.6  # five 120 ms tones and their pauses


@pytest.mark.model
async def test_say_reads_ssml_with_a_lexicon_file(server: RunningServer, tmp_path: Path) -> None:
    lexicon = tmp_path / "lexicon.json"
    lexicon.write_text(json.dumps([{"word": "Qwrtz", "say": "banana"}]))
    out = tmp_path / "ssml.wav"
    code, _, err = await run_cli(
        "say", 'I like <sub alias="green apples">GA</sub> and Qwrtz.', "--ssml",
        "--lexicon", str(lexicon), "--out", str(out), "--url", server.ws_url,
    )  # fmt: skip
    assert code == 0, err
    with wave.open(str(out)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    heard = transcribe((pcm / 32768).astype(np.float32), 24000).lower()
    assert "green apples" in heard
    assert "banana" in heard
    code, _, err = await run_cli("say", "x", "--lexicon", str(tmp_path / "none.json"))
    assert code == 2
    assert "cannot read the lexicon" in err


async def test_say_reports_errors_clearly(server: RunningServer, tmp_path: Path) -> None:
    code, _, err = await run_cli("say", "hi", "--url", "ws://127.0.0.1:9/v1/stream")
    assert code == 1
    assert "cannot reach the gateway" in err
    code, _, err = await run_cli("say", "hi", "--voice", "nobody", "--url", server.ws_url)
    assert code == 1
    assert "unknown_voice" in err
    code, _, err = await run_cli("say", "hi", "--out", str(tmp_path / "x.mp3"))
    assert code == 2
    assert "--out must end in .ogg or .wav" in err
    code, _, err = await run_cli("say", stdin="   ")
    assert code == 2
    assert "no text" in err


async def test_voices_lists_every_backend(server: RunningServer) -> None:
    code, out, err = await run_cli("voices", "--url", server.http_url)
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.split()[:2] == ["kokoro", "jf_gongitsune"] for line in lines)
    assert any(line.split()[:2] == ["fake", "tone"] for line in lines)


async def test_serve_rejects_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'x'\n")
    code, _, err = await run_cli("serve", "--config", str(bad))
    assert code == 2
    assert "server.port: must be an integer" in err


def test_llm_tokens_keep_every_character() -> None:
    text = "Hello, world! It's 3.14 at https://x.io/a?b=1 😀\nNext line."
    tokens = list(llm_tokens(text))
    assert "".join(tokens) == text
    assert max(len(token) for token in tokens) <= 5
