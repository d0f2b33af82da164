"""The Python client's conveniences: the synchronous wrapper, the iteration helpers, and the
``say`` command's playback, progress line and closing summary."""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.core.protocol import Done, Progress
from tests.asr import transcribe, word_error_rate
from tests.conftest import REPO, RunningServer, timeout
from tests.fakes import RAISE_MARKER
from tts_gateway_client import PcmChunk, connect
from tts_gateway_client.playback import PlaybackUnavailable, open_sound_output
from tts_gateway_client.say import SayReport, progress_text, summary_lines
from tts_gateway_client.sync import SpeechFailed, _run, speak

TEXT = "Good morning. The weather today is sunny, with a light breeze from the west."


def words_of(text: str) -> list[str]:
    return [w for w in (t.strip(".,;:!?") for t in text.split()) if w]


# --- the synchronous wrapper ---------------------------------------------------------------


@pytest.mark.model
async def test_sync_speak_returns_the_audio_and_its_words(
    server: RunningServer, tmp_path: Path
) -> None:
    # speak() blocks, so it runs in a thread while this loop serves the gateway.
    speech = await asyncio.to_thread(speak, TEXT, server.ws_url, voice="jm_kumo")
    assert speech.ready.voice == "jm_kumo"
    assert speech.sample_rate == 24000
    assert speech.errors == []
    assert speech.metrics["chars_spoken"] == len(TEXT)
    frames = speech.metrics["frames"]
    assert len(speech.opus) == frames
    # The whole timeline, less the codec's start-up delay.
    expected = frames * speech.ready.frame_samples - speech.ready.preskip
    assert abs(speech.pcm.size - expected) <= 2
    assert word_error_rate(TEXT, transcribe(speech.pcm, 24000)) < 0.15
    assert [w.text for w in speech.words] == words_of(TEXT)
    starts = [w.start_s for w in speech.words]
    assert starts == sorted(starts)
    assert all(w.start_s <= w.end_s <= speech.duration_s for w in speech.words)
    assert all(TEXT[w.char_start : w.char_end] == w.text for w in speech.words)
    assert not any(w.estimated for w in speech.words)
    assert speech.time_to_first_audio_ms is not None
    assert speech.time_to_first_audio_ms > 0
    out = tmp_path / "speech.wav"
    speech.write(out)
    with wave.open(str(out)) as wav:
        assert wav.getnframes() == speech.pcm.size


async def test_sync_speak_takes_pieces_and_reports_failures(server: RunningServer) -> None:
    speech = await asyncio.to_thread(
        speak, ["One ", "tw", "o three.", " Four."], server.ws_url, backend="fake"
    )
    assert [w.text for w in speech.words] == ["One", "two", "three", "Four"]
    assert all(w.estimated for w in speech.words)
    assert speech.pcm.size > 0
    text = f"One {RAISE_MARKER} three."
    with pytest.raises(SpeechFailed, match="backend_error") as failed:
        await asyncio.to_thread(speak, text, server.ws_url, backend="fake")
    assert failed.value.speech.metrics["chars_unspoken"] == len(text)
    unchecked = await asyncio.to_thread(speak, text, server.ws_url, backend="fake", check=False)
    assert [e.code for e in unchecked.errors] == ["backend_error"]
    with pytest.raises(ValueError, match="no text"):
        speak("  ", server.ws_url)


async def test_sync_runner_works_inside_a_running_loop() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert _run(answer) == 42  # this test's loop is running: the wrapper uses its own thread


# --- iteration helpers ---------------------------------------------------------------------


async def test_iteration_helpers_yield_pcm_opus_words_and_progress(
    server: RunningServer,
) -> None:
    text = "One two three. Four five."
    async with connect(server.ws_url, backend="fake") as stream:
        stream.feed([text])
        chunks: list[PcmChunk] = [chunk async for chunk in stream.iter_pcm()]
        done = stream.done
        assert done is not None
        expected = done.metrics["frames"] * stream.ready.frame_samples
        position = 0
        for chunk in chunks:
            assert chunk.sample_start == position
            assert chunk.samples.dtype == np.float32
            position += chunk.samples.size
        assert abs(position - expected) <= 2
        # Recorded while iterating audio: merged words, the last progress, no errors.
        assert [w["text"] for w in stream.words] == words_of(text)
        assert isinstance(stream.last_progress, Progress)
        assert stream.errors == []

    async with connect(server.ws_url, backend="fake") as stream:
        stream.feed([text])
        frames = [frame async for frame in stream.iter_opus()]
        assert stream.done is not None
        assert [f.seq for f in frames] == list(range(stream.done.metrics["frames"]))

    async with connect(server.ws_url, backend="fake") as stream:
        stream.feed([text])
        arrivals = [word async for word in stream.iter_words()]
        # The tone backend sends a prediction, then the fitted words that replace it.
        assert len(arrivals) > len(stream.words) == 5
        assert {w["char_start"] for w in arrivals} == {w["char_start"] for w in stream.words}

    async with connect(server.ws_url, backend="fake") as stream:
        stream.feed([text])
        progress = [p async for p in stream.iter_progress()]
        assert progress[-1].chars_spoken == len(text)
        assert {p.event for p in progress} >= {"synthesis_started", "segment_done"}

    async with connect(server.ws_url, backend="fake", format="pcm16") as stream:
        stream.feed([text])
        pcm = [chunk async for chunk in stream.iter_pcm()]
        assert stream.done is not None
        total = sum(chunk.samples.size for chunk in pcm)
        assert total == stream.done.metrics["frames"] * stream.ready.frame_samples


# --- say: summary, progress line, playback -------------------------------------------------


def done_with(**metrics: object) -> Done:
    base: dict[str, object] = {
        "chars_received": 40,
        "chars_spoken": 38,
        "chars_unspoken": 2,
        "real_time_factor": 0.2,
    }
    return Done(metrics={**base, **metrics}, cut=40, heard_start=0, heard_text="x" * 40)


def test_summary_lines_report_latency_speed_characters_and_cost() -> None:
    report = SayReport(
        time_to_first_audio_ms=241.6,
        audio_s=4.0,
        wall_s=1.0,
        done=done_with(cost_usd=0.0012),
        errors=[],
        played_on="default",
    )
    assert summary_lines(report, Path("out.ogg")) == [
        "time to first audio: 242 ms",
        "audio: 4.00 s received in 1.00 s (wall/audio 0.25); synthesis real-time factor: 0.2",
        "characters: 40 received, 38 spoken, 2 unspoken",
        "cost_usd: 0.0012",
        "played on: default",
        "wrote out.ogg",
    ]
    unfinished = SayReport(None, 0.0, 2.0, None, [])
    lines = summary_lines(unfinished, None)
    assert lines[0] == "time to first audio: n/a"
    assert "real-time factor: n/a" in lines[1]
    assert lines[-1] == "the session did not end normally (no 'done' from the gateway)"


def test_progress_text_fits_the_terminal_and_keeps_the_latest_words() -> None:
    heard = ["Good", "morning", "the", "weather", "today", "is", "sunny"]
    line = progress_text(chars_spoken=30, chars_sent=60, audio_s=2.5, heard=heard, width=60)
    assert line.startswith("[##########----------] 30/60 chars    2.5 s ")
    assert len(line) <= 59
    assert line.endswith("is sunny")
    assert line[len("[##########----------] 30/60 chars    2.5 s ")] == "…"
    wide = progress_text(chars_spoken=0, chars_sent=0, audio_s=0, heard=heard, width=200)
    assert wide.endswith(" ".join(heard))
    assert len(progress_text(chars_spoken=1, chars_sent=2, audio_s=0, heard=heard, width=10)) < 10


async def run_say(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "say", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, cwd=REPO, env={**os.environ, **(env or {})},
    )  # fmt: skip
    async with asyncio.timeout(timeout(120)):
        _, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_say_shows_words_as_they_are_heard_on_a_terminal(server: RunningServer) -> None:
    text = "One two three. Four five six seven."
    primary, secondary = os.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "say", text, "--backend", "fake",
            "--simulate-llm", "40", "--url", server.ws_url,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=secondary, cwd=REPO,
        )  # fmt: skip
        os.close(secondary)
        output = bytearray()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout(120)):
            while True:
                try:
                    chunk = await loop.run_in_executor(None, os.read, primary, 4096)
                except OSError:  # EIO: the command closed the terminal
                    break
                if not chunk:
                    break
                output.extend(chunk)
            await process.wait()
    finally:
        os.close(primary)
    assert process.returncode == 0
    screen = output.decode()
    lines = [part.removesuffix("\x1b[K") for part in screen.split("\r") if part.startswith("[")]
    assert lines, screen
    assert all(line.startswith("[") and " chars " in line for line in lines)
    heard = [line.split(" s ", 1)[1] if " s " in line else "" for line in lines]
    assert any(h.endswith("Four five six seven") for h in heard), heard
    assert "time to first audio:" in screen


async def test_say_plays_on_a_sound_device(server: RunningServer, tmp_path: Path) -> None:
    """Plays through PortAudio into ALSA's null device (no sound card exists here)."""
    pytest.importorskip("sounddevice", reason="the 'play' extra (sounddevice) is not installed")
    (tmp_path / ".asoundrc").write_text("pcm.!default {\n  type null\n}\n")
    code, err = await run_say(
        "One two three.", "--backend", "fake", "--play", "--url", server.ws_url,
        env={"HOME": str(tmp_path)},
    )  # fmt: skip
    if "PortAudio library" in err:
        pytest.skip("the PortAudio library (Debian's libportaudio2) is not installed")
    assert code == 0, err
    assert "played on: default" in err
    assert "characters: 14 received, 14 spoken, 0 unspoken" in err
    assert "\x1b[K" not in err  # no progress line when standard error is not a terminal


async def test_say_play_explains_what_is_missing(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the sounddevice module made unimportable."""
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(PlaybackUnavailable, match=r"pip install 'tts-gateway\[play\]'"):
        open_sound_output(24000)
    monkeypatch.undo()
    pytest.importorskip("sounddevice", reason="the 'play' extra (sounddevice) is not installed")
    code, err = await run_say(
        "One.", "--backend", "fake", "--play", "--url", server.ws_url,
        env={"HOME": str(tmp_path)},
    )  # fmt: skip
    if code == 0:
        pytest.skip("this machine has a sound output device")
    assert code == 2
    assert err.startswith("tts-gateway say: cannot play: ")
    assert "no sound output device" in err or "PortAudio library" in err
