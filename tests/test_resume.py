"""Client resume: a session whose gateway dies mid-speech continues on another gateway, with the
text the first one had not reported spoken, on the original offsets and timeline.

The end-to-end test runs two gateway processes (the repository's config.toml) and kills the one
speaking with SIGKILL; the Python client (``connect(..., resume=True)``) goes on on the other.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.core.protocol import (
    Audio,
    Cancel,
    Cancelled,
    End,
    Flush,
    Flushed,
    SegmentEnd,
    SegmentStart,
    ServerMessage,
    Text,
    Words,
)
from tests.conftest import timeout
from tests.test_process import gateway_process
from tts_gateway_client import connect
from tts_gateway_client.resume import ResumeBook

SENTENCES = [
    f"Sentence number {n} tells of the {thing} by the river."
    for n, thing in enumerate(
        ["mill", "bridge", "boat", "lantern", "orchard", "ferry", "tower", "meadow", "forge",
         "harbor", "chapel", "garden", "market", "quarry"],
        start=1,
    )
]  # fmt: skip
TEXT = " ".join(SENTENCES)


def test_the_book_replays_what_was_not_reported_spoken() -> None:
    book = ResumeBook(frame_samples=480)
    for message in (Text("One. Two. "), Flush(1), Text("Three")):
        book.sending(message)
    book.received(SegmentStart(0, "One.", 0, 4, 0, "sentence", "text", 10))
    book.received(Audio(0, 0, b""))
    book.received(SegmentEnd(0, 9000, 1.0))
    book.received(SegmentStart(1, " Two.", 4, 9, 9000, "sentence", "text", 10))
    book.received(Audio(1, 480, b""))
    assert book.replay() == [Text(" Two. "), Flush(1), Text("Three")]
    shift = book.resumed_at()
    assert (shift.chars, shift.samples, shift.seq, shift.segment) == (4, 960, 2, 2)
    # A cancel not yet answered drops the text before it; its position was the old timeline's.
    book.sending(Cancel("c", 300))
    book.sending(Text(" Four."))
    book.sending(End())
    assert book.replay() == [Flush(1), Cancel("c"), Text(" Four."), End()]
    assert book.resumed_at().chars == 15
    book.received(Flushed(1, 960, True))
    book.received(Cancelled("c", 960, 4, 15, " Two. Three"))
    assert book.replay() == [Text(" Four."), End()]


@pytest.mark.model
async def test_killed_gateway_the_client_resumes_on_the_other_and_hears_the_rest() -> None:
    async with gateway_process() as doomed, gateway_process() as spare:
        async with connect(spare.ws_url, backend="espeak", format="pcm16") as whole:
            whole.feed([TEXT])
            async with asyncio.timeout(timeout(120)):
                reference = {w["char_start"] async for w in whole.iter_words()}
        messages: list[ServerMessage] = []
        resumed_at = -1
        async with connect(doomed.ws_url, backend="espeak", format="pcm16", resume=True,
                           resume_urls=[spare.ws_url]) as stream:  # fmt: skip
            stream.feed([TEXT])
            async with asyncio.timeout(timeout(120)):
                async for message in stream:
                    if stream.resumes and resumed_at < 0:
                        resumed_at = len(messages)
                    messages.append(message)
                    ended = [m for m in messages if isinstance(m, SegmentEnd)]
                    if len(ended) == 2 and doomed.process.returncode is None:
                        doomed.process.kill()  # SIGKILL, mid-speech
                        with contextlib.suppress(ProcessLookupError):
                            await doomed.process.wait()
            done = stream.done
        assert stream.resumes == 1
        assert done is not None
        assert done.cut == len(TEXT)
    before, after = messages[:resumed_at], messages[resumed_at:]

    # Offsets on the original text: every segment and word of both sessions is its own text.
    segments = [m for m in messages if isinstance(m, SegmentStart)]
    assert all(TEXT[s.char_start : s.char_end] == s.text for s in segments)
    heard = [w for m in messages if isinstance(m, Words) for w in m.words]
    assert all(TEXT[w["char_start"] : w["char_end"]] == w["text"] for w in heard)
    # The listener hears the rest: every word an uninterrupted session times.
    assert {w["char_start"] for w in heard} == reference
    # At most the sentence in flight is spoken twice.
    spoken_before = {w["char_start"] for m in before if isinstance(m, Words) for w in m.words}
    spoken_after = {w["char_start"] for m in after if isinstance(m, Words) for w in m.words}
    twice = spoken_before & spoken_after
    in_flight = [s for s in segments if s in before and not any(
        isinstance(m, SegmentEnd) and m.segment == s.segment for m in before)]  # fmt: skip
    assert len(in_flight) <= 1
    if twice:
        assert in_flight
        assert all(in_flight[0].char_start <= start < in_flight[0].char_end for start in twice)
    assert after
    assert isinstance(after[0], SegmentStart)
    assert after[0].char_start == max(
        (s.char_end for s in segments if s in before and s not in in_flight), default=0
    )
    # The timeline goes on: frames numbered and placed without gaps across the resume.
    audio = [m for m in messages if isinstance(m, Audio)]
    assert [a.seq for a in audio] == list(range(len(audio)))
    assert [a.sample_start for a in audio] == [a.seq * 480 for a in audio]
