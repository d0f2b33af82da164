"""Timing truth end to end: word timestamps, progress, and what was heard, on a real server."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.core.protocol import (
    Audio,
    Cancelled,
    Progress,
    SegmentEnd,
    SegmentStart,
    Words,
)
from tests.conftest import RunningServer, timeout
from tests.streams import Transcript, check_timeline, collect
from tests.test_cli import run_cli
from tts_gateway_client import connect
from tts_gateway_client.say import llm_tokens

MIXED = (
    "Dr. Chen paid $4.50 for 3 coffees, approx. 3.14 each! "
    "See https://example.com/a?b=1 or mail jane.doe@mail.com. "
    "Café au lait, naïve façade 😀, and “quotes” (too)."
)


async def spoken(server: RunningServer, text: str, backend: str = "kokoro") -> Transcript:
    async with connect(server.ws_url, backend=backend) as stream:
        stream.feed(llm_tokens(text))
        return await collect(stream, deadline_s=timeout(90))


def check_words(transcript: Transcript, text: str) -> list[dict[str, Any]]:
    """Offsets point at the client's characters; the (last) timings of each segment are ordered
    and inside the segment's audio; a segment's words arrive before its first audio frame, and
    measured (not estimated) words before every frame that holds them. Returns the words."""
    segments = {s.segment: s for s in transcript.of(SegmentStart)}
    ends = {e.segment: e.sample_end for e in transcript.of(SegmentEnd)}
    final: dict[int, dict[int, dict[str, Any]]] = {}  # segment -> char_start -> word
    audio_end = 0
    current: int | None = None
    audio_in_segment = False
    for message in transcript.messages:
        if isinstance(message, SegmentStart):
            current, audio_in_segment = message.segment, False
        elif isinstance(message, Audio):
            audio_end = message.sample_start + transcript.ready.frame_samples
            audio_in_segment = True
        elif isinstance(message, Words):
            assert message.segment == current
            assert message.segment in final or not audio_in_segment, "words after audio"
            segment = segments[message.segment]
            for word in message.words:
                assert text[word["char_start"] : word["char_end"]] == word["text"]
                assert segment.char_start <= word["char_start"] < word["char_end"]
                assert word["char_end"] <= segment.char_end
                if not message.estimated:
                    assert word["sample_start"] >= audio_end - transcript.ready.frame_samples
            # A later message for the same characters replaces the earlier one.
            final.setdefault(message.segment, {}).update(
                {w["char_start"]: w for w in message.words}
            )
    words: list[dict[str, Any]] = []
    previous = 0
    for index, segment_words in sorted(final.items()):
        for _, word in sorted(segment_words.items()):
            assert previous <= word["sample_start"] <= word["sample_end"] <= ends[index]
            assert segments[index].sample_start <= word["sample_start"]
            previous = word["sample_start"]
            words.append(word)
    return words


@pytest.mark.model
async def test_kokoro_words_point_at_exactly_what_the_client_sent(server: RunningServer) -> None:
    transcript = await spoken(server, MIXED)
    check_timeline(transcript)
    words = check_words(transcript, MIXED)
    assert all(not m.estimated for m in transcript.of(Words))
    covered = [(w["char_start"], w["char_end"]) for w in words]
    for token in re.finditer(r"\w+", MIXED):
        assert any(a <= token.start() and token.end() <= b for a, b in covered), token.group()
    spoken_forms = {w["text"]: w.get("spoken") for w in words}
    assert spoken_forms["$4.50"] == "four dollars and fifty cents"
    assert spoken_forms["3.14"] == "three point one four"
    assert spoken_forms["naïve"] is None


def silence_gaps(pcm: np.ndarray, rate: int, *, min_ms: float = 90) -> list[tuple[int, int]]:
    frame = rate // 100
    loud = [
        np.sqrt(np.mean(pcm[i : i + frame] ** 2)) > 10 ** (-42 / 20)
        for i in range(0, len(pcm) - frame, frame)
    ]
    gaps, start = [], None
    for index, is_loud in enumerate([*loud, True]):
        if not is_loud and start is None:
            start = index
        elif is_loud and start is not None:
            if (index - start) * 10 >= min_ms:
                gaps.append((start * frame, index * frame))
            start = None
    return gaps


@pytest.mark.model
async def test_kokoro_word_ends_meet_the_pauses_in_the_audio(server: RunningServer) -> None:
    text = (
        "When the rain stopped, we walked to the harbour. The boats were quiet, "
        "and the gulls had gone. Nobody said a word, until the bell rang."
    )
    transcript = await spoken(server, text)
    words = check_words(transcript, text)
    gaps = silence_gaps(transcript.pcm(), 24000)
    before_pauses = [w for w in words if text[w["char_end"] : w["char_end"] + 1] in (",", ".")]
    assert len(before_pauses) == 6
    for word in before_pauses[:-1]:  # the last one is followed by the end of the audio
        end = word["sample_end"]
        nearest = min(gaps, key=lambda gap: abs(gap[0] - end))
        # Within 60 ms of where the pause begins; a word may also end up to 160 ms into what
        # this -42 dBFS level calls the pause: a final consonant's release ("stopped,") is
        # quieter than that, and still the word's sound (the backend ends words at -45 dBFS).
        assert -0.060 * 24000 <= end - nearest[0] <= 0.160 * 24000, (word["text"], end, nearest)


async def test_backends_without_timing_get_estimated_words(server: RunningServer) -> None:
    text = "One two three. Four, five six!"
    transcript = await spoken(server, text, backend="fake")
    words = check_words(transcript, text)
    assert [w["text"] for w in words] == ["One", "two", "three", "Four", "five", "six"]
    assert all(m.estimated for m in transcript.of(Words))


async def test_progress_reports_the_session(server: RunningServer) -> None:
    text = "Progress should be reported. Often enough, but not too often."
    transcript = await spoken(server, text, backend="fake")
    progress = transcript.of(Progress)
    events = [p.event for p in progress]
    segments = len(transcript.segments)
    for event in ("synthesis_started", "first_audio", "segment_done"):
        assert events.count(event) == segments, event
    assert [p.chars_received for p in progress] == sorted(p.chars_received for p in progress)
    assert [p.chars_spoken for p in progress] == sorted(p.chars_spoken for p in progress)
    assert [p.audio_sent_ms for p in progress] == sorted(p.audio_sent_ms for p in progress)
    assert progress[-1].chars_spoken == len(text)
    assert all(p.audio_buffered_ms >= 0 for p in progress)
    # Ticks are throttled to one per progress interval (250 ms) of the server's clock.
    ticks = [t for p, t in zip(transcript.messages, transcript.arrivals, strict=True)
             if isinstance(p, Progress) and p.event == "tick"]  # fmt: skip
    if len(ticks) > 1:
        assert len(ticks) <= (ticks[-1] - ticks[0]) / 0.25 + 2
    done = transcript.done
    assert done is not None
    assert done.metrics["time_to_first_audio_ms"] is not None
    assert done.cut == len(text)
    assert done.heard_text == text


@pytest.mark.model
async def test_cancel_with_the_playback_position_reports_what_was_heard(
    server: RunningServer,
) -> None:
    text = "The first sentence is heard completely. The second one is cut off in the middle."
    async with connect(server.ws_url, short_first_segment=False) as stream:
        await stream.send_text(text)
        await stream.flush()
        transcript = Transcript(stream.ready)

        def second_words() -> list[dict[str, Any]]:
            return [w for m in transcript.of(Words) if m.segment == 1 for w in m.words]

        async with asyncio.timeout(timeout(60)):  # until the words up to "off" have come
            while not any(w["text"] == "off" for w in second_words()):
                transcript.messages.append(await stream.receive())
        second = second_words()
        # The listener is in the middle of the second sentence: "cut" has ended, "off" has not.
        cut_word = next(w for w in second if w["text"] == "cut")
        off_word = next(w for w in second if w["text"] == "off")
        position = (cut_word["sample_end"] + off_word["sample_end"]) // 2
        await stream.cancel("barge", position=position)
        answer = await collect(stream, until=Cancelled, deadline_s=timeout(30))
        cancelled = answer.messages[-1]
        assert isinstance(cancelled, Cancelled)
        assert cancelled.position == position
        assert cancelled.cut == cut_word["char_end"]
        assert cancelled.heard_start == 0
        assert cancelled.heard_text == text[: cut_word["char_end"]]
        assert cancelled.unheard_text == text[cut_word["char_end"] :]
        assert cancelled.heard_text.endswith("is cut")
        await stream.send_text("Next turn.")
        await stream.end()
        rest = await collect(stream, deadline_s=timeout(30))
    done = rest.done
    assert done is not None
    assert (done.heard_start, done.cut, done.heard_text) == (len(text), len(text) + 10,
                                                             "Next turn.")  # fmt: skip


async def test_cancel_before_any_audio_was_heard(server: RunningServer) -> None:
    async with connect(server.ws_url, backend="fake") as stream:
        await stream.send_text("Words that nobody hears.")
        await stream.flush()
        await collect(stream, until=Audio, deadline_s=timeout(10))
        await stream.cancel(position=0)
        answer = await collect(stream, until=Cancelled, deadline_s=timeout(10))
    cancelled = answer.messages[-1]
    assert isinstance(cancelled, Cancelled)
    assert (cancelled.cut, cancelled.heard_text) == (0, "")
    assert cancelled.unheard_text == "Words that nobody hears."


async def test_say_writes_the_events(server: RunningServer, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    code, _, err = await run_cli(
        "say", "One two. Three four.", "--backend", "fake", "--events", str(events),
        "--url", server.ws_url,
    )  # fmt: skip
    assert code == 0, err
    records = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [r["type"] for r in records]
    assert "audio" not in kinds
    assert kinds[-1] == "done"
    assert {"segment_start", "words", "progress", "segment_end"} <= set(kinds)
    final = {w["char_start"]: w["text"] for r in records if r["type"] == "words"
             for w in r["words"]}  # fmt: skip
    assert [text for _, text in sorted(final.items())] == ["One", "two", "Three", "four"]
