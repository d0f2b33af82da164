"""The JS client's resume functions in Debian's chromium: the same plan and the same offset
mapping as the Python client's (tts_gateway_client.resume), on the same session record.

The JS client does not reconnect by itself (tests/test_browser.py: a lost session is reported,
not replayed); an application that wants resume opens a new session with ``resumePlan``'s
messages and maps its messages with ``shiftResumed`` (clients/js/README.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser

from gateway.core.protocol import (
    Audio,
    Cancelled,
    End,
    SegmentEnd,
    SegmentStart,
    ServerMessage,
    Text,
    Words,
)
from tests.conftest import RunningServer, repo_config, serve
from tests.fakes import ToneBackend
from tests.test_browser import EXECUTABLE, browser  # noqa: F401 (the chromium fixture)
from tts_gateway_client.resume import ResumeBook

pytestmark = pytest.mark.skipif(
    EXECUTABLE is None,
    reason="Debian's chromium is not installed (/usr/bin/chromium); `make test` installs it",
)

TEXT = "Première phrase ici. Deuxième 😀 phrase là. Troisième et dernière."


@pytest.fixture(scope="module")
async def tone_server() -> AsyncIterator[RunningServer]:
    running = await serve(repo_config(), {"fake": ToneBackend("fake")})
    yield running
    await running.stop()


def as_map(message: ServerMessage) -> dict[str, Any]:
    """A message as the JS client sees it (without audio data, which is beside the point)."""
    fields = dataclasses.asdict(message)
    fields.pop("data", None)
    return {"type": message.TYPE, **fields}


async def test_js_resume_plan_and_shift_match_the_python_client(
    browser: Browser,  # noqa: F811
    tone_server: RunningServer,
) -> None:
    book = ResumeBook(frame_samples=480)
    book.sending(Text(TEXT))
    book.sending(End())
    first, second = TEXT.index(" Deux"), TEXT.index(" Trois")
    for message in (
        SegmentStart(0, TEXT[:first], 0, first, 0, "sentence", "text", len(TEXT)),
        Audio(0, 0, b""),
        Audio(1, 480, b""),
        SegmentEnd(0, 900, 1.0),
        SegmentStart(1, TEXT[first:second], first, second, 900, "sentence", "text", len(TEXT)),
        Audio(2, 960, b""),
    ):
        book.received(message)
    shift = book.resumed_at()
    resumed: list[ServerMessage] = [
        SegmentStart(0, TEXT[first:second], 0, second - first, 0, "sentence", "text", 20),
        Words(
            0,
            False,
            [
                {
                    "text": "Deuxième",
                    "char_start": 1,
                    "char_end": 9,
                    "sample_start": 100,
                    "sample_end": 900,
                }
            ],
        ),
        Audio(0, 0, b"\x00\x01"),
        SegmentEnd(0, 1200, 2.0),
        Cancelled(None, 1440, 10, 20, "x", 1000, 12, 0, "a", "b"),
    ]
    record = {
        "codePoints": list(TEXT),
        "settledChars": book.settled,
        "receivedEnd": book.next_sample,
        "nextSeq": book.next_seq,
        "nextSegment": book.next_segment,
        "ended": True,
    }
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{tone_server.http_url}/")
        outcome = await page.evaluate(
            """async ([record, messages]) => {
              const { resumePlan, shiftResumed } = await import('/client/tts-gateway.js');
              const plan = resumePlan(record);
              const shifted = messages.map((m) => shiftResumed(m, plan));
              return { plan, shifted };
            }""",
            [record, [as_map(m) for m in resumed]],
        )
    finally:
        await context.close()
    plan = outcome["plan"]
    assert (plan["chars"], plan["samples"], plan["seq"], plan["segment"]) == (
        shift.chars, shift.samples, shift.seq, shift.segment,
    )  # fmt: skip
    assert plan["messages"] == [{"type": m.TYPE, **dataclasses.asdict(m)} for m in book.replay()]
    assert outcome["shifted"] == [as_map(shift.apply(m)) for m in resumed]
