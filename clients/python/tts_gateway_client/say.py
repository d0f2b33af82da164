"""``tts-gateway say``: stream text to a gateway, write what comes back, report the latency."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from gateway.core.protocol import Audio, Cancelled, Done, Error, SegmentStart
from tts_gateway_client.client import DEFAULT_URL, SentText, connect
from tts_gateway_client.output import AudioCollector

__all__ = ["SayOptions", "SayReport", "llm_tokens", "say", "simulated_llm"]

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


@dataclass(frozen=True, slots=True)
class SayReport:
    """What a ``say`` run measured at the client."""

    time_to_first_audio_ms: float | None
    audio_s: float
    wall_s: float
    done: Done | None
    errors: list[Error]


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
    """Speak ``options.text`` through the gateway; write the audio if ``options.out``."""
    async with connect(
        options.url,
        backend=options.backend,
        voice=options.voice,
        lang=options.lang,
        speed=options.speed,
        format=options.format,
    ) as stream:
        started = time.monotonic()
        collector = AudioCollector(stream.ready)
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
                case SegmentStart() if first_segment is None:
                    first_segment = message
                case Error():
                    errors.append(message)
                    print(f"gateway error: {message.code}: {message.message}", file=log)
                case Cancelled():
                    print(f"cancelled: {message.unspoken_text!r} not spoken", file=log)
                case Done():
                    done = message
        if events is not None:
            events.close()
        wall = time.monotonic() - started
        ttfa = None
        if first_segment is not None and first_audio_at is not None:
            trigger = completing_send(stream.sent, first_segment)
            if trigger is not None:
                ttfa = (first_audio_at - trigger.at) * 1000
    if options.out is not None and collector.frames:
        collector.write(options.out)
    return SayReport(ttfa, collector.duration_s, wall, done, errors)


def print_report(report: SayReport, out: Path | None, *, log: TextIO = sys.stderr) -> None:
    """The closing summary of ``say``."""
    ttfa = f"{report.time_to_first_audio_ms:.0f} ms" if report.time_to_first_audio_ms else "n/a"
    print(f"time to first audio: {ttfa}", file=log)
    metrics = report.done.metrics if report.done else {}
    rtf = metrics.get("real_time_factor")
    delivery = report.wall_s / report.audio_s if report.audio_s else float("nan")
    print(
        f"audio: {report.audio_s:.2f} s received in {report.wall_s:.2f} s "
        f"(wall/audio {delivery:.2f}); synthesis real-time factor: "
        f"{rtf if rtf is not None else 'n/a'}",
        file=log,
    )
    if metrics:
        print(
            f"characters: {metrics.get('chars_received')} received, "
            f"{metrics.get('chars_spoken')} spoken, {metrics.get('chars_unspoken')} unspoken",
            file=log,
        )
    if out is not None:
        print(f"wrote {out}", file=log)
