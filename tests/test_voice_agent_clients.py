"""The real Pipecat and LiveKit Agents ElevenLabs services, pointed at the gateway by their
documented base-URL options, speak an LLM reply through real Kokoro, offline on loopback.

Each client: a multi-sentence reply in token-sized pieces (Whisper hears it, word error rate at
most 0.15), the client's own word-timestamp events (they match the text, and their times match
where Whisper hears the words), an interruption mid-speech (the audio stops and the gateway stops
synthesizing), then another reply on the same connection. Both clients only ever use
``multi-stream-input``. Any name lookup other than loopback fails the test.
"""

from __future__ import annotations

import asyncio
import re
import socket
import statistics
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from loguru import logger
from numpy.typing import NDArray

from gateway.server.elevenlabs_socket import ElevenLabsSocket
from tests.asr import transcribe, transcribe_words, word_error_rate, words
from tests.conftest import RunningServer, timeout
from tests.servers import eventually

with warnings.catch_warnings():  # their imports warn about their own deprecations
    warnings.simplefilter("ignore", DeprecationWarning)
    import aiohttp
    from livekit.agents import APIConnectOptions
    from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT
    from livekit.plugins import elevenlabs as livekit_elevenlabs
    from pipecat.frames.frames import (
        EndFrame,
        Frame,
        InterruptionFrame,
        LLMFullResponseEndFrame,
        LLMFullResponseStartFrame,
        LLMTextFrame,
        TTSAudioRawFrame,
        TTSStoppedFrame,
        TTSTextFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
    from pipecat.workers.runner import WorkerRunner

pytestmark = [
    pytest.mark.model,
    pytest.mark.slow,
    # The clients' own code warns about its deprecations while it runs; not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

REPLY = (
    "Sure, I can help with that! The museum opens at nine in the morning. "
    "The entry is cheaper on weekdays, and children get in free. Would you like directions?"
)
LONG_REPLY = (
    "This answer is long on purpose, so that the listener has time to interrupt it. "
    "It keeps going with sentence after sentence of ordinary words. "
    "Nobody should ever hear this part, because the user barges in first. "
    "And this final sentence is certainly never spoken at all."
)
AFTER = "Okay, I stopped. What next?"
RATE = 24000
VOICE = "pNInz6obpgDQGcFmaJgB"  # ElevenLabs' Adam, a premade id: Kokoro's jm_kumo here
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def tokens(text: str) -> list[str]:
    """The reply as an LLM streams it: pieces of up to four characters."""
    return re.findall(r"\s*\S{1,4}", text)


@pytest.fixture(autouse=True, scope="module")
def quiet_pipecat() -> Iterator[None]:
    """Pipecat logs every frame at DEBUG through loguru; warnings are enough here."""
    logger.remove()
    handler = logger.add(lambda message: print(message, end=""), level="WARNING")
    yield
    logger.remove(handler)


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse (and record) every name lookup that is not loopback."""
    refused: list[str] = []
    lookup = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK:
            refused.append(str(host))
            raise OSError(f"the test allows loopback only, not {host!r}")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield refused
    assert not refused, f"non-loopback lookups: {refused}"


def xi_socket(server: RunningServer) -> ElevenLabsSocket:
    (found,) = [s for s in server.gateway.sessions if isinstance(s, ElevenLabsSocket)]
    return found


def check_speech(pcm: NDArray[np.float32], text: str, rate: int = RATE) -> None:
    heard = transcribe(pcm, rate)
    assert word_error_rate(text, heard) <= 0.15, heard


def check_word_times(
    timed: list[tuple[str, float]], pcm: NDArray[np.float32], rate: int = RATE
) -> None:
    """The client's word times (seconds from the reply's first audio) are where Whisper hears
    the same words, give or take a syllable."""
    heard = [(words(w), start) for w, start, _ in transcribe_words(pcm, rate)]
    theirs = {w[0]: start for w, start in heard if len(w) == 1}
    deltas = [abs(start - theirs[w[0]]) for text, start in timed
              if len(w := words(text)) == 1 and w[0] in theirs]  # fmt: skip
    assert len(deltas) >= len(timed) // 2, (timed, heard)
    assert statistics.median(deltas) < 0.25, (timed, heard)


# -- Pipecat -----------------------------------------------------------------------------------


@dataclass
class PipecatTurn:
    audio: bytearray = field(default_factory=bytearray)
    words: list[tuple[str, int]] = field(default_factory=list)  # (word, pts in ns)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    interrupted_at: float | None = None
    audio_after_interruption: list[float] = field(default_factory=list)  # arrival delays (s)


class Collector(FrameProcessor):
    """After the TTS service: what it pushes downstream, by turn."""

    def __init__(self) -> None:
        super().__init__()
        self.turn = PipecatTurn()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        turn = self.turn
        if isinstance(frame, TTSAudioRawFrame):
            turn.audio += frame.audio
            if turn.interrupted_at is not None:
                turn.audio_after_interruption.append(time.monotonic() - turn.interrupted_at)
        elif isinstance(frame, TTSTextFrame):
            turn.words.append((frame.text, frame.pts or 0))
        elif isinstance(frame, TTSStoppedFrame):
            turn.stopped.set()
        await self.push_frame(frame, direction)


async def pipecat_reply(worker: PipelineWorker, text: str) -> None:
    await worker.queue_frame(LLMFullResponseStartFrame())
    for token in tokens(text):
        await worker.queue_frame(LLMTextFrame(token))
    await worker.queue_frame(LLMFullResponseEndFrame())


async def test_pipecat_elevenlabs_service(server: RunningServer, loopback_only: list[str]) -> None:
    tts = ElevenLabsTTSService(
        api_key="any key",
        url=f"ws://127.0.0.1:{server.port}",  # Pipecat's documented option: no /v1
        sample_rate=RATE,
        settings=ElevenLabsTTSService.Settings(voice=VOICE, model="eleven_flash_v2_5"),
    )
    collector = Collector()
    worker = PipelineWorker(Pipeline([tts, collector]),
                            params=PipelineParams(audio_out_sample_rate=RATE),
                            cancel_on_idle_timeout=False)  # fmt: skip
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run(), name="pipecat-runner")
    try:
        reply = collector.turn
        await pipecat_reply(worker, REPLY)
        await asyncio.wait_for(reply.stopped.wait(), timeout(60))

        interrupted = collector.turn = PipecatTurn()
        await pipecat_reply(worker, LONG_REPLY)
        await eventually(lambda: len(interrupted.audio) >= RATE, deadline_s=timeout(60))
        interrupted.interrupted_at = time.monotonic()
        await worker.queue_frame(InterruptionFrame())
        await eventually(lambda: xi_socket(server).contexts_speaking == 0,
                         deadline_s=timeout(10))  # fmt: skip
        await asyncio.sleep(1.0)  # any more audio of the interrupted reply would show now

        after = collector.turn = PipecatTurn()
        await pipecat_reply(worker, AFTER)
        await asyncio.wait_for(after.stopped.wait(), timeout(60))
        await worker.queue_frame(EndFrame())
        await asyncio.wait_for(running, timeout(30))
    finally:
        if not running.done():
            await worker.cancel()
            await running

    pcm = np.frombuffer(bytes(reply.audio), "<i2").astype(np.float32) / 32768.0
    check_speech(pcm, REPLY)
    assert words(" ".join(w for w, _ in reply.words)) == words(REPLY)
    first = reply.words[0][1]
    check_word_times([(w, (pts - first) / 1e9) for w, pts in reply.words], pcm)
    # The interrupted reply: what was on its way when the user barged in, and nothing later.
    assert all(delay < 0.5 for delay in interrupted.audio_after_interruption)
    assert len(interrupted.audio) / 2 / RATE < 6.0  # far from the whole answer
    check_speech(np.frombuffer(bytes(after.audio), "<i2").astype(np.float32) / 32768.0, AFTER)


# -- LiveKit Agents ------------------------------------------------------------------------------


@dataclass
class LiveKitTurn:
    pcm: list[NDArray[np.float32]] = field(default_factory=list)
    words: list[tuple[str, float]] = field(default_factory=list)  # (word, start s)
    finals: int = 0
    rate: int = RATE

    @property
    def seconds(self) -> float:
        return sum(len(part) for part in self.pcm) / self.rate


async def livekit_consume(stream: Any, turn: LiveKitTurn, *, stop_after_s: float | None) -> None:
    async for event in stream:
        frame = event.frame
        turn.rate = frame.sample_rate
        turn.pcm.append(np.frombuffer(bytes(frame.data), "<i2").astype(np.float32) / 32768.0)
        for timed in frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, None) or []:
            turn.words.append((str(timed), float(timed.start_time)))
        turn.finals += int(event.is_final)
        if stop_after_s is not None and turn.seconds >= stop_after_s:
            return


async def livekit_push(stream: Any, text: str, *, end: bool) -> None:
    for token in tokens(text):
        stream.push_text(token)
        await asyncio.sleep(0.01)
    if end:
        stream.end_input()


async def test_livekit_elevenlabs_plugin(server: RunningServer, loopback_only: list[str]) -> None:
    options = APIConnectOptions(max_retry=0, timeout=timeout(30))
    errors: list[str] = []
    async with aiohttp.ClientSession() as session:
        tts = livekit_elevenlabs.TTS(
            api_key="any key",
            voice_id=VOICE,
            model="eleven_turbo_v2_5",
            base_url=f"{server.http_url}/v1",  # LiveKit's documented option: with /v1
            encoding="mp3_22050_32",  # the plugin's default: the gateway streams MP3
            http_session=session,
        )
        tts.on("error", lambda event: errors.append(repr(event.error)))
        voices = await tts.list_voices()

        reply = LiveKitTurn()
        stream = tts.stream(conn_options=options)
        await livekit_push(stream, REPLY, end=True)
        await asyncio.wait_for(livekit_consume(stream, reply, stop_after_s=None), timeout(60))
        await stream.aclose()

        interrupted = LiveKitTurn()
        stream = tts.stream(conn_options=options)
        pusher = asyncio.create_task(livekit_push(stream, LONG_REPLY, end=False))
        await asyncio.wait_for(livekit_consume(stream, interrupted, stop_after_s=1.0), timeout(60))
        pusher.cancel()
        await stream.aclose()  # the agent's barge-in
        await eventually(lambda: xi_socket(server).contexts_speaking == 0,
                         deadline_s=timeout(10))  # fmt: skip

        after = LiveKitTurn()
        stream = tts.stream(conn_options=options)
        await livekit_push(stream, AFTER, end=True)
        await asyncio.wait_for(livekit_consume(stream, after, stop_after_s=None), timeout(60))
        await stream.aclose()
        await tts.aclose()

    assert not errors
    assert "jf_alpha" in [voice.id for voice in voices]
    assert reply.finals >= 1
    assert after.finals >= 1
    assert reply.rate == 22050  # MP3 from the gateway, decoded by the plugin
    pcm = np.concatenate(reply.pcm)
    check_speech(pcm, REPLY, reply.rate)
    assert words(" ".join(w for w, _ in reply.words)) == words(REPLY)
    check_word_times(reply.words, pcm, reply.rate)
    assert interrupted.seconds < 6.0
    check_speech(np.concatenate(after.pcm), AFTER, after.rate)
