"""Resume in the JS client, in Debian's chromium.

- Its resume functions make the same plan and the same offset mapping as the Python client's
  (tts_gateway_client.resume), on the same session record.
- With ``resume: true``, a session whose replica is killed mid-turn goes on through HAProxy on
  another replica (tests/cluster.py): the listener hears the rest, the words stay on the
  original text's offsets, the request resolves. When no gateway takes the session, the
  request fails with ``resume_failed``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from playwright.async_api import Browser, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from gateway.core.protocol import (
    Audio,
    Cancel,
    Cancelled,
    ClientMessage,
    End,
    Flush,
    SegmentEnd,
    SegmentStart,
    ServerMessage,
    Text,
    Words,
)
from tests.cluster import ESPEAK_CONFIG, Cluster, Replica, cluster
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.fakes import ToneBackend
from tests.test_browser import EXECUTABLE, browser, words_of  # noqa: F401 (the chromium fixture)
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


def wire(message: ClientMessage) -> dict[str, Any]:
    """A client message as the JS client sends it (fields without a value left out)."""
    fields = {"type": message.TYPE, **dataclasses.asdict(message)}
    return {key: value for key, value in fields.items() if value is not None}


def pending(sent: list[ClientMessage]) -> list[dict[str, Any]]:
    """The JS record's ``pending`` for messages sent in this order: each flush and cancel with
    the code points sent before it."""
    marks: list[dict[str, Any]] = []
    offset = 0
    for message in sent:
        if isinstance(message, Text):
            offset += len(message.text)
        elif isinstance(message, Flush | Cancel):
            marks.append({"offset": offset, "message": wire(message)})
    return marks


async def test_js_resume_plan_and_shift_match_the_python_client(
    browser: Browser,  # noqa: F811
    tone_server: RunningServer,
) -> None:
    first, second = TEXT.index(" Deux"), TEXT.index(" Trois")
    # Two sessions: one with a flush after the segment in flight, then `end`; one with a flush
    # already spoken past and a cancel not answered (the text before it is not sent again).
    scripts: list[list[ClientMessage]] = [
        [Text(TEXT[:second]), Flush(7), Text(TEXT[second:]), End()],
        [Text(TEXT[:first]), Flush(8), Text(TEXT[first:second]), Cancel(9, 300), Text("Encore.")],
    ]
    books: list[ResumeBook] = []
    records: list[dict[str, Any]] = []
    for sent in scripts:
        book = ResumeBook(frame_samples=480)
        for sending in sent:
            book.sending(sending)
        for message in (
            SegmentStart(0, TEXT[:first], 0, first, 0, "sentence", "text", len(TEXT)),
            Audio(0, 0, b""),
            Audio(1, 480, b""),
            SegmentEnd(0, 900, 1.0),
            SegmentStart(1, TEXT[first:second], first, second, 900, "sentence", "text", 99),
            Audio(2, 960, b""),
        ):
            book.received(message)
        books.append(book)
        records.append(
            {
                "codePoints": list("".join(m.text for m in sent if isinstance(m, Text))),
                "settledChars": book.settled,
                "receivedEnd": book.next_sample,
                "nextSeq": book.next_seq,
                "nextSegment": book.next_segment,
                "ended": any(isinstance(m, End) for m in sent),
                "pending": pending(sent),
            }
        )
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
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{tone_server.http_url}/")
        outcomes = await page.evaluate(
            """async ([records, messages]) => {
              const { resumePlan, shiftResumed } = await import('/client/tts-gateway.js');
              return records.map((record) => {
                const plan = resumePlan(record);
                return { plan, shifted: messages.map((m) => shiftResumed(m, plan)) };
              });
            }""",
            [records, [as_map(m) for m in resumed]],
        )
    finally:
        await context.close()
    for book, outcome in zip(books, outcomes, strict=True):
        shift, plan = book.resumed_at(), outcome["plan"]
        assert (plan["chars"], plan["samples"], plan["seq"], plan["segment"]) == (
            shift.chars, shift.samples, shift.seq, shift.segment,
        )  # fmt: skip
        assert plan["messages"] == [wire(m) for m in book.replay()]
        assert outcome["shifted"] == [as_map(shift.apply(m)) for m in resumed]
    # The cancel not answered drops the text before it: the plan starts there.
    assert outcomes[1]["plan"]["chars"] == second
    assert [m["type"] for m in outcomes[1]["plan"]["messages"]] == ["flush", "cancel", "text"]


# -- a replica killed mid-turn -------------------------------------------------------------------

ORDINALS: Final = ("first", "second", "third", "fourth", "fifth", "sixth")
STORY: Final = " ".join(f"The {n} sentence of this story is short." for n in ORDINALS)
# Sentences are segments (no adaptive joining), and the gateway sends 2 s of audio ahead of
# playback at most: when the replica dies, most of the story is still to be spoken.
RESUME_CONFIG: Final = (
    ESPEAK_CONFIG.replace("[session]\n", "[session]\nadaptive_chunking = false\n")
    + "\n[limits]\nmax_buffer_ahead_s = 2.0\n"
)

SPEAK_STORY = """([text]) => {
  window.story = import('/client/tts-gateway.js').then(async ({ TtsGatewayClient }) => {
    const tts = new TtsGatewayClient({ resume: true, reconnect: { attempts: 5, delayMs: 200 } });
    const out = { words: [], audio: [], resumed: [], errors: [], spoken: 0 };
    window.tts = tts;
    window.out = out;
    tts.addEventListener('word', (e) => out.words.push(e.detail));
    tts.addEventListener('audio', (e) => out.audio.push([e.detail.seq, e.detail.sample_start]));
    tts.addEventListener('progress', (e) => { out.spoken = e.detail.progress.chars_spoken; });
    tts.addEventListener('resumed', (e) => out.resumed.push({ ...e.detail, kept: [...tts.words] }));
    tts.addEventListener('error', (e) => out.errors.push(`${e.detail.code}: ${e.detail.message}`));
    try {
      out.result = await tts.speak(text);
      out.played = { stats: tts.stats, frames: out.audio.length };
      out.done = await tts.end();
    } catch (e) {
      out.failed = `${e.code}: ${e.message}`;
    }
    out.frameSamples = tts.ready.frame_samples;
    await tts.close();
    return out;
  });
}"""


async def explain(page: Page, running: Cluster) -> str:
    """What the page and the cluster were doing, for a step that did not end."""
    state = await page.evaluate(
        """() => ({ out: window.out && { ...window.out, words: window.out.words.length,
                                       audio: window.out.audio.length },
                    state: window.tts?.state, stats: window.tts?.stats })"""
    )
    logs = [
        f"--- {p.log_path.name}\n{p.log()[-2000:]}" for p in (*running.replicas, running.balancer)
    ]
    return "\n".join([f"the page: {state}", *logs])


async def serving(replicas: list[Replica]) -> Replica:
    """The replica that holds the one open session."""
    async with httpx.AsyncClient() as http:
        counts = [(await http.get(f"{r.http_url}/healthz")).json()["sessions"] for r in replicas]
    assert sorted(counts) == [0, 1], counts
    return replicas[counts.index(1)]


async def test_a_replica_killed_mid_turn_the_js_client_resumes_on_another(
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, replicas=2, config=RESUME_CONFIG) as running:
        context = await browser.new_context()
        try:
            page = await context.new_page()
            await page.goto(f"{running.balancer.http_url}/")
            await page.evaluate(SPEAK_STORY, [STORY])
            # Some of the story spoken (a segment ended), most of it still to come.
            try:
                await page.wait_for_function(
                    "window.out && (window.out.spoken > 0 || window.out.failed !== undefined)",
                    timeout=timeout(60) * 1000,
                )
            except PlaywrightTimeout:
                raise AssertionError(await explain(page, running)) from None
            (await serving(running.replicas)).kill()
            async with asyncio.timeout(timeout(120)):
                out = await page.evaluate("window.story")
        finally:
            await context.close()
    assert "failed" not in out, out.get("failed")
    assert out["errors"] == []
    assert out["played"]["stats"]["resumes"] == 1
    [resumed] = out["resumed"]
    assert resumed["resumes"] == 1
    assert resumed["reason"] == "the connection closed (code 1006)"
    resent_from = resumed["chars"]
    assert 0 < resent_from < len(STORY)

    # At most the segment in flight (one sentence) is heard twice: of the words received before
    # the drop, those not reported spoken are all of one segment.
    unsettled = {w["segment"] for w in resumed["kept"] if w["char_start"] >= resent_from}
    assert len(unsettled) <= 1
    # Exactly the text not reported spoken was sent again.
    assert out["done"]["metrics"]["chars_received"] == len(STORY) - resent_from

    # Every word is announced once, in text order, on the original text's offsets.
    words = out["words"]
    assert [w["text"] for w in words] == words_of(STORY)
    assert all(STORY[w["char_start"] : w["char_end"]] == w["text"] for w in words)
    assert [w["char_start"] for w in words] == sorted({w["char_start"] for w in words})
    assert [w["sample_start"] for w in words] == sorted(w["sample_start"] for w in words)

    # One timeline: frames numbered on from the old session's, each where the last one ended;
    # the request resolved once playback reached the end of its audio.
    frames = out["frameSamples"]
    seqs = [seq for seq, _ in out["audio"]]
    assert seqs == list(range(len(seqs)))
    assert all(start == seq * frames for seq, start in out["audio"])
    result, played = out["result"], out["played"]
    assert not result["cancelled"]
    assert (result["charStart"], result["charEnd"]) == (0, len(STORY))
    assert result["flushed"]["sample_end"] == played["frames"] * frames
    assert played["stats"]["position"] == result["flushed"]["sample_end"]


async def test_a_resume_no_gateway_takes_fails_with_resume_failed(
    browser: Browser,  # noqa: F811
) -> None:
    """The only gateway shuts down mid-turn (a slowed tone backend, so that there is a middle):
    the client tries to resume, nothing answers, and the request fails saying so."""
    running = await serve(repo_config(), {"fake": ToneBackend("fake", chunk_delay_s=0.05)})
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{running.http_url}/")
        await page.evaluate(
            """() => {
              window.lost = import('/client/tts-gateway.js').then(async ({ TtsGatewayClient }) => {
                const tts = new TtsGatewayClient(
                  { backend: 'fake', resume: true, reconnect: { attempts: 1, delayMs: 10 } });
                window.tts = tts;
                const errors = [];
                tts.addEventListener('error', (e) => errors.push(
                  {code: e.detail.code, fatal: e.detail.fatal, closeCode: e.detail.closeCode}));
                try { await tts.speak('one two three four five six seven eight nine ten'); }
                catch (e) { return {rejected: e.code, message: e.message, errors,
                                    state: tts.state, resumes: tts.stats.resumes}; }
                return {rejected: null, errors};
              });
            }"""
        )
        await page.wait_for_function(
            "window.tts && window.tts.stats.framesReceived > 0", timeout=timeout(60) * 1000
        )
        await running.stop()
        async with asyncio.timeout(timeout(60)):
            outcome = await page.evaluate("window.lost")
    finally:
        await context.close()
        await running.stop()
    assert outcome["rejected"] == "resume_failed"
    assert outcome["message"].startswith("the gateway went away (shutting_down), and no gateway")
    # The shutdown itself is not reported (it was to be resumed); the failed resume is.
    assert outcome["errors"] == [{"code": "resume_failed", "fatal": True, "closeCode": None}]
    assert (outcome["resumes"], outcome["state"]) == (0, "closed")
