"""``tts-gateway say``: stream text to a gateway, write or play what comes back, report the latency.

With ``progress`` (the CLI turns it on when standard error is a terminal) a status line shows how
much text has been spoken and the words as they are heard: by the sound card's clock when
playing, else as their audio arrives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import shutil
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gateway.audio.codecs import frame_decoder
from gateway.core.protocol import Audio, Cancelled, Done, Error, Ready, SegmentStart
from tts_gateway_client.client import DEFAULT_URL, SentText, SpeechStream, connect
from tts_gateway_client.output import AudioCollector
from tts_gateway_client.playback import SoundOutput, open_sound_output

__all__ = [
    "ProgressLine",
    "SayOptions",
    "SayReport",
    "llm_tokens",
    "progress_text",
    "say",
    "simulated_llm",
    "summary_lines",
]

# Roughly how an LLM tokenizer cuts English: a leading space joins the word, long words split.
_TOKEN = re.compile(r" ?[A-Za-z]{1,4}|\d{1,3}| ?[^\sA-Za-z\d]|\s+")


@dataclass(frozen=True, slots=True)
class SayOptions:
    text: str
    out: Path | None = None
    url: str = DEFAULT_URL
    backend: str | None = None
    voice: str | None = None
    lang: str | None = None
    speed: float | None = None
    format: str | None = None
    simulate_llm_tps: float | None = None
    events: Path | None = None
    play: bool = False
    progress: bool = False
    ssml: bool = False  # the text is SSML (start.ssml)
    lexicon: list[dict[str, str]] | None = None  # the session's lexicon (start.lexicon)


@dataclass(frozen=True, slots=True)
class SayReport:
    """What a ``say`` run measured at the client."""

    time_to_first_audio_ms: float | None
    audio_s: float
    wall_s: float
    done: Done | None
    errors: list[Error]
    played_on: str | None = None


def llm_tokens(text: str) -> Iterator[str]:
    """Cut text into pieces of a few characters, the way an LLM streams it."""
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() > position:
            yield text[position : match.start()]
        yield match.group()
        position = match.end()
    if position < len(text):
        yield text[position:]


async def simulated_llm(text: str, tokens_per_s: float) -> AsyncIterator[str]:
    """Yield ``text`` as LLM tokens at a steady rate."""
    interval = 1.0 / tokens_per_s
    started = time.monotonic()
    for count, token in enumerate(llm_tokens(text)):
        delay = started + count * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield token


def completing_send(sent: list[SentText], segment: SegmentStart) -> SentText | None:
    """The message after which the gateway released ``segment`` (text, flush or end)."""
    if segment.released_by == "text":
        return next(
            (s for s in sent if s.kind == "text" and s.chars >= segment.received_chars), None
        )
    return next((s for s in sent if s.kind == segment.released_by), None)


async def say(options: SayOptions, *, log: TextIO = sys.stderr) -> SayReport:
    """Speak ``options.text`` through the gateway; write the audio if ``options.out``, play it
    if ``options.play``.

    Raises PlaybackUnavailable (before connecting) if ``play`` is asked and no sound output can
    be opened, and ClientError if the gateway refuses the session or cannot be reached.
    """
    output = open_sound_output(24000) if options.play else None  # the stream rate of version 1
    try:
        return await _say(options, output, log)
    finally:
        if output is not None:
            output.close()


async def _say(options: SayOptions, output: SoundOutput | None, log: TextIO) -> SayReport:
    async with connect(
        options.url,
        backend=options.backend,
        voice=options.voice,
        lang=options.lang,
        speed=options.speed,
        format=options.format,
        ssml=options.ssml or None,
        lexicon=options.lexicon,
    ) as stream:
        started = time.monotonic()
        collector = AudioCollector(stream.ready)
        player = _Player(stream.ready, output) if output is not None else None
        line = ProgressLine(log) if options.progress else None
        if options.simulate_llm_tps:
            stream.feed(simulated_llm(options.text, options.simulate_llm_tps))
        else:
            stream.feed([options.text])
        first_segment: SegmentStart | None = None
        first_audio_at: float | None = None
        done: Done | None = None
        errors: list[Error] = []
        events = options.events.open("w", encoding="utf-8") if options.events else None
        async for message in stream:
            now = time.monotonic()
            if events is not None and not isinstance(message, Audio):
                record = {"type": message.TYPE, "at_s": round(now - started, 4)}
                record.update(dataclasses.asdict(message))
                events.write(json.dumps(record, ensure_ascii=False) + "\n")
            match message:
                case Audio():
                    collector.add(message, now)
                    first_audio_at = first_audio_at or now
                    if player is not None:
                        await player.play(message)
                case SegmentStart() if first_segment is None:
                    first_segment = message
                case Error():
                    errors.append(message)
                    _print(line, f"gateway error: {message.code}: {message.message}", log)
                case Cancelled():
                    _print(line, f"cancelled: {message.unspoken_text!r} not spoken", log)
                case Done():
                    done = message
            if line is not None:
                heard = player.position if player is not None else collector.timeline_samples
                line.show(stream, heard)
        if events is not None:
            events.close()
        wall = time.monotonic() - started
        if player is not None:
            await player.finish(lambda: line.show(stream, player.position) if line else None)
        if line is not None:
            heard = player.position if player is not None else collector.timeline_samples
            line.show(stream, heard, force=True)  # the last state, before the summary replaces it
            line.close()
        ttfa = None
        if first_segment is not None and first_audio_at is not None:
            trigger = completing_send(stream.sent, first_segment)
            if trigger is not None:
                ttfa = (first_audio_at - trigger.at) * 1000
    if options.out is not None and collector.frames:
        collector.write(options.out)
    played_on = output.device_name if output is not None else None
    return SayReport(ttfa, collector.duration_s, wall, done, errors, played_on)


class _Player:
    """Decodes a session's frames and plays them; its position is on the session timeline."""

    def __init__(self, ready: Ready, output: SoundOutput) -> None:
        self._output = output
        self._decoder = frame_decoder(ready.format, ready.sample_rate)

    @property
    def position(self) -> int:
        return self._output.position

    async def play(self, frame: Audio) -> None:
        await self._output.write(self._decoder.decode(frame.data))

    async def finish(self, tick: Any) -> None:
        await self._output.write(self._decoder.finish())
        drained = asyncio.create_task(self._output.drain(), name="say-drain")
        try:
            while not drained.done():
                tick()
                await asyncio.wait({drained}, timeout=0.1)
        finally:
            drained.cancel()
        await drained


def _print(line: ProgressLine | None, text: str, log: TextIO) -> None:
    if line is not None:
        line.clear()
    print(text, file=log)


def progress_text(
    *, chars_spoken: int, chars_sent: int, audio_s: float, heard: Sequence[str], width: int
) -> str:
    """The status line: a bar of the text spoken so far, and the last words heard that fit."""
    cells = 20
    filled = round(cells * chars_spoken / chars_sent) if chars_sent else 0
    bar = "#" * filled + "-" * (cells - filled)
    head = f"[{bar}] {chars_spoken}/{chars_sent} chars {audio_s:6.1f} s "
    room = width - len(head) - 1
    words = " ".join(heard)
    if room <= 0:
        return head[: max(0, width - 1)]
    if len(words) > room:
        words = "…" + words[len(words) - room + 1 :]
    return head + words


class ProgressLine:
    """A status line redrawn in place on a terminal (at most ten times a second)."""

    def __init__(self, out: TextIO, *, width: int | None = None) -> None:
        self._out = out
        self._width = width or shutil.get_terminal_size((100, 24)).columns
        self._drawn_at = 0.0
        self._shown = False

    def show(self, stream: SpeechStream, heard_position: int, *, force: bool = False) -> None:
        """Redraw with the words whose sound has started by ``heard_position``."""
        now = time.monotonic()
        if now - self._drawn_at < 0.1 and not force:
            return
        self._drawn_at = now
        heard = [w["text"] for w in stream.words if w["sample_start"] <= heard_position]
        progress = stream.last_progress
        text = progress_text(
            chars_spoken=progress.chars_spoken if progress else 0,
            chars_sent=stream.sent[-1].chars if stream.sent else 0,
            audio_s=heard_position / stream.ready.sample_rate,
            heard=heard,
            width=self._width,
        )
        self._out.write("\r" + text + "\x1b[K")
        self._out.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._out.write("\r\x1b[K")
            self._out.flush()
            self._drawn_at = 0.0

    def close(self) -> None:
        self.clear()
        self._shown = False


def summary_lines(report: SayReport, out: Path | None) -> list[str]:
    """The closing summary of ``say``: latency, speed, characters, cost (if reported), output."""
    ttfa = report.time_to_first_audio_ms
    lines = [f"time to first audio: {f'{ttfa:.0f} ms' if ttfa is not None else 'n/a'}"]
    metrics: dict[str, Any] = report.done.metrics if report.done else {}
    rtf = metrics.get("real_time_factor")
    delivery = report.wall_s / report.audio_s if report.audio_s else float("nan")
    lines.append(
        f"audio: {report.audio_s:.2f} s received in {report.wall_s:.2f} s "
        f"(wall/audio {delivery:.2f}); synthesis real-time factor: "
        f"{rtf if rtf is not None else 'n/a'}"
    )
    if metrics:
        lines.append(
            f"characters: {metrics.get('chars_received')} received, "
            f"{metrics.get('chars_spoken')} spoken, {metrics.get('chars_unspoken')} unspoken"
        )
    for key in sorted(k for k in metrics if k.startswith("cost")):
        value = metrics[key]
        lines.append(f"{key}: {value:g}" if isinstance(value, int | float) else f"{key}: {value}")
    if report.done is None:
        lines.append("the session did not end normally (no 'done' from the gateway)")
    if report.played_on is not None:
        lines.append(f"played on: {report.played_on}")
    if out is not None:
        lines.append(f"wrote {out}")
    return lines


def print_report(report: SayReport, out: Path | None, *, log: TextIO = sys.stderr) -> None:
    """Print the closing summary of ``say``."""
    for line in summary_lines(report, out):
        print(line, file=log)
