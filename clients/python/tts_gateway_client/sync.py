"""A synchronous wrapper for scripts: one call speaks a text and returns the audio and its words.

```python
from tts_gateway_client.sync import speak

speech = speak("Hello there! How are you?", voice="jf_alpha")
speech.pcm            # float32 numpy array at speech.sample_rate (24000)
speech.words          # [SpokenWord(text='Hello', start_s=..., end_s=...), ...]
speech.write("hello.wav")
```

It runs the asyncio client on its own event loop (in a worker thread when the caller already
runs one, e.g. in a notebook).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import AsyncIterable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from gateway.core.protocol import Audio, Done, Error, Ready, SegmentStart
from tts_gateway_client.client import DEFAULT_URL, ClientError, connect
from tts_gateway_client.output import AudioCollector
from tts_gateway_client.say import completing_send

__all__ = ["Speech", "SpeechFailed", "SpokenWord", "speak"]

T = TypeVar("T")


class SpeechFailed(ClientError):
    """The gateway reported errors during the session (e.g. a segment it could not synthesize).

    ``speech`` holds what came back all the same.
    """

    def __init__(self, message: str, speech: Speech) -> None:
        super().__init__(message)
        self.speech = speech


@dataclass(frozen=True, slots=True)
class SpokenWord:
    """A word of the text and when it is heard in :attr:`Speech.pcm`."""

    text: str
    char_start: int
    char_end: int
    start_s: float
    end_s: float
    spoken: str | None
    estimated: bool


@dataclass(frozen=True)
class Speech:
    """What one :func:`speak` call got back."""

    ready: Ready
    #: The audio, float32 mono at :attr:`sample_rate`, without the codec's start-up delay.
    pcm: NDArray[np.float32]
    words: list[SpokenWord]
    #: The Opus packets as received (empty for ``format="pcm16"``).
    opus: list[bytes]
    done: Done | None
    errors: list[Error]
    time_to_first_audio_ms: float | None
    _collector: AudioCollector = field(repr=False)

    @property
    def sample_rate(self) -> int:
        return self.ready.sample_rate

    @property
    def duration_s(self) -> float:
        return self.pcm.size / self.sample_rate

    @property
    def metrics(self) -> dict[str, Any]:
        """The gateway's final metrics (``done.metrics``); empty if the session did not end."""
        return self.done.metrics if self.done is not None else {}

    def write(self, path: str | Path) -> None:
        """Write ``.wav`` (PCM16) or ``.ogg`` (the Opus packets as received)."""
        self._collector.write(path)


def speak(
    text: str | Iterable[str] | AsyncIterable[str],
    url: str = DEFAULT_URL,
    *,
    backend: str | None = None,
    voice: str | None = None,
    lang: str | None = None,
    speed: float | None = None,
    format: str | None = None,
    timeout_s: float = 300.0,
    check: bool = True,
) -> Speech:
    """Speak ``text`` (a string, or pieces of one such as LLM tokens) and wait for all of it.

    Raises ClientError if the gateway cannot be reached or refuses the session, TimeoutError
    after ``timeout_s``, and, with ``check``, SpeechFailed if the gateway reported errors (with
    ``check=False`` they are in :attr:`Speech.errors`).
    """
    if isinstance(text, str):
        if not text.strip():
            raise ValueError("no text to speak")
        source: Iterable[str] | AsyncIterable[str] = [text]
    else:
        source = text

    async def run() -> Speech:
        async with asyncio.timeout(timeout_s):
            return await _speak(source, url, backend, voice, lang, speed, format)

    speech = _run(run)
    if check and (speech.errors or speech.done is None):
        problems = "; ".join(f"{e.code}: {e.message}" for e in speech.errors)
        raise SpeechFailed(problems or "the session ended without 'done'", speech)
    return speech


async def _speak(
    source: Iterable[str] | AsyncIterable[str],
    url: str,
    backend: str | None,
    voice: str | None,
    lang: str | None,
    speed: float | None,
    format: str | None,
) -> Speech:
    async with connect(
        url, backend=backend, voice=voice, lang=lang, speed=speed, format=format
    ) as stream:
        collector = AudioCollector(stream.ready)
        stream.feed(source)
        first_segment: SegmentStart | None = None
        first_audio_at: float | None = None
        async for message in stream:
            if isinstance(message, Audio):
                now = time.monotonic()
                collector.add(message, now)
                first_audio_at = first_audio_at or now
            elif isinstance(message, SegmentStart) and first_segment is None:
                first_segment = message
        ttfa = None
        if first_segment is not None and first_audio_at is not None:
            trigger = completing_send(stream.sent, first_segment)
            if trigger is not None:
                ttfa = (first_audio_at - trigger.at) * 1000
        ready = stream.ready
        preskip = ready.preskip
        words = [
            SpokenWord(
                text=w["text"],
                char_start=w["char_start"],
                char_end=w["char_end"],
                start_s=max(0, w["sample_start"] - preskip) / ready.sample_rate,
                end_s=max(0, w["sample_end"] - preskip) / ready.sample_rate,
                spoken=w.get("spoken"),
                estimated=w["estimated"],
            )
            for w in stream.words
        ]
        pcm = collector.pcm()[preskip:] if collector.frames else np.zeros(0, np.float32)
        opus = [frame.data for frame in collector.frames] if ready.format == "opus" else []
        return Speech(
            ready=ready,
            pcm=pcm,
            words=words,
            opus=opus,
            done=stream.done,
            errors=list(stream.errors),
            time_to_first_audio_ms=ttfa,
            _collector=collector,
        )


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tts-sync") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
