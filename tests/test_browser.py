"""The browser client and the demo page in Debian's chromium, driven by Playwright.

The page is loaded from a real gateway (real Kokoro and the fast tone backend), the client
decodes the real Opus stream with WebCodecs, or with the WebAssembly decoder on a page where
WebCodecs is removed, and plays it through an AudioWorklet in real time (headless chromium runs
its audio clock without a sound card). Every wait is for a condition, with a generous deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
import shutil
import struct
import sys
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from gateway.backends.espeak import EspeakBackend
from gateway.config import AuthRequired, AuthSettings, SessionSettings
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.fakes import ToneBackend

CHROMIUM = "/usr/bin/chromium"
INSECURE_HOST = "insecure.test"
EXECUTABLE = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # Let an AudioContext start without a click, and keep its clock running in the background.
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    # A host name that is not localhost: a page served from it is not a secure context (no
    # AudioWorklet, no WebCodecs), as a page on plain http from another machine. No https
    # upgrade attempts for it either.
    f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1",
    "--disable-features=HttpsUpgrades",
]
# Deleting WebCodecs before any script runs makes the client take its WebAssembly path.
WITHOUT_WEBCODECS = "delete window.AudioDecoder; delete window.EncodedAudioChunk;"

SHORT = "Good morning. The weather is sunny today, with a light breeze."
LONG = (
    "Here is a longer answer, so that there is time to interrupt it. First, the gateway cuts "
    "the text into sentences. Then it synthesizes each one and streams the audio back, with "
    "the timing of every word. The browser plays it and reports what was heard."
)

pytestmark = pytest.mark.skipif(
    EXECUTABLE is None,
    reason="Debian's chromium is not installed (/usr/bin/chromium); `make test` installs it",
)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium (never a browser downloaded by Playwright)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=EXECUTABLE, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class DemoPage:
    """The demo page in a fresh browser context, with the errors its scripts reported."""

    page: Page
    problems: list[str] = field(default_factory=list)


@pytest.fixture
async def demo(browser: Browser, server: RunningServer) -> AsyncIterator[Callable[..., Any]]:
    """Opens the gateway's demo page (with or without WebCodecs); closed after the test."""
    contexts: list[BrowserContext] = []

    async def open_demo(*, webcodecs: bool = True) -> DemoPage:
        context = await browser.new_context()
        contexts.append(context)
        page = await context.new_page()
        if not webcodecs:
            await page.add_init_script(WITHOUT_WEBCODECS)
        opened = DemoPage(page)
        page.on("pageerror", lambda error: opened.problems.append(str(error)))
        page.on("console", lambda m: opened.problems.append(m.text) if m.type == "error" else None)
        await page.goto(f"{server.http_url}/")
        await page.evaluate("window.demo.loaded")
        return opened

    yield open_demo
    for context in contexts:
        await context.close()


async def wait_for(page: Page, condition: str, seconds: float = 60) -> None:
    await page.wait_for_function(condition, timeout=timeout(seconds) * 1000)


def words_of(text: str) -> list[str]:
    """The words of plain text as the gateway counts them (punctuation around them dropped)."""
    return [w for w in (t.strip(".,;:!?\"'()") for t in text.split()) if w]


PATHS = [
    pytest.param("fake", True, id="tone-webcodecs"),
    pytest.param("fake", False, id="tone-wasm"),
    pytest.param("kokoro", True, id="kokoro-webcodecs", marks=pytest.mark.model),
    pytest.param("kokoro", False, id="kokoro-wasm", marks=pytest.mark.model),
]


@pytest.mark.parametrize(("backend", "webcodecs"), PATHS)
async def test_demo_plays_every_sample_and_highlights_words_in_order(
    demo: Callable[..., Any], backend: str, webcodecs: bool
) -> None:
    opened: DemoPage = await demo(webcodecs=webcodecs)
    page = opened.page
    await page.select_option("#backend", backend)
    await page.fill("#text", SHORT)
    await page.click("#speak")
    await wait_for(page, "demo.results.length > 0 || demo.errors.length > 0")
    state = await page.evaluate(
        """() => ({results: demo.results, errors: demo.errors, stats: demo.client.stats,
                   ready: demo.client.ready, announced: demo.words, kept: demo.client.words,
                   heard: document.querySelector('#heard').textContent,
                   current: document.querySelector('#current').textContent})"""
    )
    assert state["errors"] == []
    [result] = state["results"]
    stats, ready = state["stats"], state["ready"]
    assert not result["cancelled"]
    assert stats["decoder"] == ("webcodecs" if webcodecs else "wasm")
    assert ready["backend"] == backend

    # Every frame the gateway sent (up to the flush) was decoded: frame_samples each, at 48 kHz.
    sample_end = result["flushed"]["sample_end"]
    assert sample_end > 0
    assert stats["framesReceived"] * ready["frame_samples"] == sample_end
    assert stats["samplesDecoded"] == 2 * sample_end
    assert stats["samplesDropped"] == 0
    # ...and played: the flush resolves once playback has reached its end.
    assert stats["position"] == sample_end
    assert stats["timeToFirstAudioMs"] > 0
    assert stats["timeToFirstSoundMs"] >= stats["timeToFirstAudioMs"]

    # Every word was announced once, in text order, as the gateway timed it.
    announced = state["announced"]
    assert [w["text"] for w in announced] == words_of(SHORT)
    assert announced == state["kept"]
    starts = [w["char_start"] for w in announced]
    assert starts == sorted(set(starts))
    assert all(SHORT[w["char_start"] : w["char_end"]] == w["text"] for w in announced)
    # Once it has all been heard, the transcript shows all of it, no word highlighted.
    assert state["current"] == ""
    assert state["heard"] == SHORT

    # End the session: the gateway's count of frames matches what was decoded.
    done = await page.evaluate("demo.client.end()")
    after = await page.evaluate("demo.client.stats")
    assert done["metrics"]["chars_received"] == len(SHORT)
    assert done["heard_text"] == SHORT
    assert after["samplesDecoded"] == 2 * done["metrics"]["frames"] * ready["frame_samples"]
    assert after["position"] == done["metrics"]["frames"] * ready["frame_samples"]
    assert opened.problems == []


@pytest.mark.parametrize(("backend", "webcodecs"), PATHS)
async def test_stop_halts_playback_and_shows_what_was_heard(
    demo: Callable[..., Any], backend: str, webcodecs: bool
) -> None:
    opened: DemoPage = await demo(webcodecs=webcodecs)
    page = opened.page
    await page.select_option("#backend", backend)
    await page.fill("#text", LONG)
    await page.check("#llm")
    await page.click("#speak")
    await wait_for(page, "demo.words.length >= 4 || demo.errors.length > 0")
    await page.click("#stop")
    await wait_for(page, "demo.cancelled.length > 0 && demo.results.length > 0")
    state = await page.evaluate(
        """() => ({cancelled: demo.cancelled[0], result: demo.results[0], errors: demo.errors,
                   stats: demo.client.stats, announced: demo.words,
                   shown: document.querySelector('#result').textContent})"""
    )
    assert state["errors"] == []
    cancelled, stats, announced = state["cancelled"], state["stats"], state["announced"]
    assert state["result"]["cancelled"]

    # What was heard: a prefix of the text, up to a word whose end playback had passed.
    cut = cancelled["cut"]
    assert cancelled["heard_start"] == 0
    assert cancelled["heard_text"] == LONG[:cut]
    assert cancelled["heard_text"] + cancelled["unheard_text"] == LONG[: cancelled["unspoken_end"]]
    assert cancelled["unheard_text"].strip()
    assert 0 < cut <= announced[-1]["char_end"]
    heard_words = words_of(cancelled["heard_text"])
    assert heard_words == [w["text"] for w in announced[: len(heard_words)]]
    # The position reported is where playback stopped, less the output latency.
    assert 0 < cancelled["position"] <= stats["position"]
    assert f"Heard: “{cancelled['heard_text']}”" in state["shown"]

    # Playback stopped at once: nothing buffered, nothing plays and no word follows.
    assert not stats["playing"]
    assert stats["bufferedMs"] == 0
    assert stats["aheadMs"] == 0
    await asyncio.sleep(1.0)
    later = await page.evaluate("({stats: demo.client.stats, words: demo.words.length})")
    assert later["stats"]["position"] == stats["position"]
    assert later["words"] == len(announced)

    # The session goes on: the next request is a new heard turn, spoken in full.
    await page.uncheck("#llm")
    await page.fill("#text", "Next turn.")
    await page.click("#speak")
    await wait_for(page, "demo.results.length > 1 || demo.errors.length > 1")
    result = await page.evaluate("demo.results[1]")
    assert not result["cancelled"]
    assert [w["text"] for w in (await page.evaluate("demo.words"))[len(announced) :]] == [
        "Next",
        "turn",
    ]
    done = await page.evaluate("demo.client.end()")
    assert done["heard_start"] == cancelled["unspoken_end"]
    assert done["heard_text"] == "Next turn."
    assert opened.problems == []


async def test_word_timeline_merges_words_by_char_start(demo: Callable[..., Any]) -> None:
    page = (await demo()).page
    result = await page.evaluate(
        """async () => {
          const { WordTimeline, codePointLength } = await import('/client/words.js');
          const t = new WordTimeline();
          const w = (text, char_start, sample_start) =>
            ({text, char_start, char_end: char_start + text.length, sample_start,
              sample_end: sample_start + 100});
          // A prediction, then the fitted words that replace it (same char_start).
          t.add({segment: 0, estimated: true, words: [w('one', 0, 0), w('two', 4, 900)]});
          t.add({segment: 0, estimated: true, words: [w('one', 0, 10), w('two', 4, 300)]});
          // Two native pieces of one segment: the second adds words, it does not replace.
          t.add({segment: 1, estimated: false, words: [w('three', 8, 500)]});
          t.add({segment: 1, estimated: false, words: [w('four', 14, 700)]});
          const all = t.words().map((x) => [x.text, x.sample_start]);
          const first = t.advance(350).map((x) => x.text);
          const current = t.current(350)?.text ?? null;
          const gap = t.current(450);
          // An announced word is not moved back; the rest may still change.
          t.add({segment: 1, estimated: false, words: [w('two', 4, 5), w('four', 14, 650)]});
          const second = t.advance(10000).map((x) => [x.text, x.sample_start]);
          t.add({segment: 2, estimated: false, words: [w('five', 19, 20000)]});
          t.dropUnreached();
          return {all, first, current, gap, second, left: t.words().length,
                  lengths: [codePointLength('a😀b'), codePointLength('\\u00e9'), 'a😀b'.length]};
        }"""
    )
    assert result["all"] == [["one", 10], ["two", 300], ["three", 500], ["four", 700]]
    assert result["first"] == ["one", "two"]
    assert result["current"] == "two"
    assert result["gap"] is None
    assert result["second"] == [["three", 500], ["four", 650]]
    assert result["left"] == 4
    assert result["lengths"] == [3, 1, 4]


async def test_a_refused_session_is_reported_and_not_retried(demo: Callable[..., Any]) -> None:
    page = (await demo()).page
    outcome = await page.evaluate(
        """async () => {
          const { TtsGatewayClient } = await import('/client/tts-gateway.js');
          const tts = new TtsGatewayClient({ voice: 'nobody', reconnect: { delayMs: 10 } });
          try { await tts.speak('hi'); return {ok: true}; }
          catch (e) { return {code: e.code, message: e.message, retryable: e.retryable,
                              state: tts.state}; }
        }"""
    )
    assert outcome["code"] == "unknown_voice"
    assert "nobody" in outcome["message"]
    assert outcome["retryable"] is False
    unreachable = await page.evaluate(
        """async () => {
          const { TtsGatewayClient } = await import('/client/tts-gateway.js');
          const tts = new TtsGatewayClient({ url: 'ws://127.0.0.1:9/v1/stream',
                                             reconnect: { attempts: 2, delayMs: 10 } });
          try { await tts.connect(); return {ok: true}; }
          catch (e) { return {code: e.code, retryable: e.retryable}; }
        }"""
    )
    assert unreachable == {"code": "connect_failed", "retryable": True}


async def test_gateway_serves_the_demo_and_the_client(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "tts-gateway playground" in page.text
        imported = re.findall(r'from "(/client/[^"]+)"', page.text)
        assert imported == ["/client/tts-gateway.js", "/client/recording.js"]
        for path in (
            "/client/tts-gateway.js",
            "/client/recording.js",
            "/client/player-worklet.js",
            "/client/vendor/msgpack/index.mjs",
            "/client/vendor/opus-decoder/opus-decoder.min.js",
        ):
            response = await http.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith("text/javascript"), path
        assert (await http.get("/client/nothing.js")).status_code == 404


async def test_a_new_session_follows_end(demo: Callable[..., Any]) -> None:
    page = (await demo()).page
    outcome = await page.evaluate(
        """async () => {
          const { TtsGatewayClient } = await import('/client/tts-gateway.js');
          const tts = new TtsGatewayClient({ backend: 'fake' });
          const words = [];
          tts.addEventListener('word', (e) => words.push(e.detail.text));
          const first = await tts.speak('One two.');
          const done = await tts.end();
          const ended = tts.state;
          const second = await tts.speak('Three four.');
          const sessions = [done.metrics.chars_received, tts.ready.session, tts.state];
          await tts.close();
          return {first, second, ended, sessions, words, firstSession: done};
        }"""
    )
    assert not outcome["first"]["cancelled"]
    assert not outcome["second"]["cancelled"]
    assert outcome["ended"] == "closed"
    chars, _, state = outcome["sessions"]
    assert chars == len("One two.")
    assert state == "open"
    # The second session has its own timeline and offsets: its flush ends where its audio does.
    assert outcome["second"]["flushed"]["sample_end"] > 0
    assert outcome["words"] == ["One", "two", "Three", "four"]


async def test_the_player_reports_its_clock_before_it_answers_a_mark(
    demo: Callable[..., Any],
) -> None:
    """`speak()` resolves on the player's mark; the page's playback position must then cover all
    of the request's audio. The audio thread's processor, run here on the page with a stand-in
    port and clock, sends the clock report for the samples before a mark ahead of the mark's
    answer (it used to answer first: the page then read a position one render quantum short
    while the audio ended inside it, and the resume test caught 395008 for 395040)."""
    page = (await demo()).page
    posted = await page.evaluate(
        """async () => {
          const source = await (await fetch('/client/player-worklet.js')).text();
          const posted = [];
          class Processor { constructor() { this.port = { postMessage: (m) => posted.push(m) }; } }
          let Player = null;
          new Function('AudioWorkletProcessor', 'registerProcessor', source)(
            Processor, (name, cls) => { Player = cls; });
          globalThis.currentFrame = 0;
          const player = new Player({ processorOptions: { startSamples: 0 } });
          // Two requests of 3000 and 1000 samples: both end inside a 128-sample quantum.
          player.receive({ type: 'audio', session: 1, pos: 0, data: new Float32Array(3000) });
          player.receive({ type: 'mark', id: 1 });
          player.receive({ type: 'audio', session: 1, pos: 3000, data: new Float32Array(1000) });
          player.receive({ type: 'mark', id: 2 });
          const output = [[new Float32Array(128)]];
          for (let quantum = 0; quantum < 40; quantum++) {
            player.process([], output);
            globalThis.currentFrame += 128;
          }
          delete globalThis.currentFrame;
          return posted;
        }"""
    )
    for mark, end in ((1, 3000), (2, 4000)):
        answer = next(i for i, m in enumerate(posted) if m["type"] == "mark" and m["id"] == mark)
        clock = [m for m in posted[:answer] if m["type"] == "clock"][-1]
        assert clock["pos"] == end, (mark, clock)
        # The report says when its position is heard: the frame right after the last sample.
        assert clock["frame"] == end, (mark, clock)


async def test_a_lost_session_is_reported_and_not_replayed(browser: Browser) -> None:
    """The gateway shuts down in the middle of a reply (a slowed tone backend, so that there is
    a middle): the client reports the close and fails the pending request."""
    slow = ToneBackend("fake", chunk_delay_s=0.05)
    running = await serve(repo_config(), {"fake": slow})
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{running.http_url}/")
        await page.evaluate("window.demo.loaded")
        await page.evaluate(
            """() => {
              window.lost = import('/client/tts-gateway.js').then(async ({ TtsGatewayClient }) => {
                const tts = new TtsGatewayClient({ backend: 'fake' });
                window.tts = tts;
                const errors = [];
                tts.addEventListener('error', (e) => errors.push(
                  {code: e.detail.code, fatal: e.detail.fatal, closeCode: e.detail.closeCode}));
                try { await tts.speak('one two three four five six seven eight nine ten'); }
                catch (e) { return {rejected: e.code, closeCode: e.closeCode, errors,
                                    state: tts.state}; }
                return {rejected: null, errors};
              });
            }"""
        )
        await page.wait_for_function(
            "window.tts && window.tts.stats.framesReceived > 0", timeout=timeout(60) * 1000
        )
        await running.stop()
        outcome = await page.evaluate("window.lost")
    finally:
        await context.close()
        await running.stop()
    assert outcome["rejected"] == "connection_closed"
    assert outcome["closeCode"] == 1001
    # The gateway says why (shutting down, with the unspoken text), then the socket closes.
    assert outcome["errors"] == [
        {"code": "shutting_down", "fatal": True, "closeCode": None},
        {"code": "connection_closed", "fatal": True, "closeCode": 1001},
    ]
    assert outcome["state"] == "closed"


async def test_pcm16_streams_play_too(demo: Callable[..., Any]) -> None:
    page = (await demo()).page
    outcome = await page.evaluate(
        """async () => {
          const { TtsGatewayClient } = await import('/client/tts-gateway.js');
          const tts = new TtsGatewayClient({ backend: 'fake', format: 'pcm16' });
          const result = await tts.speak('One two three.');
          const stats = tts.stats;
          await tts.close();
          return {result, stats, format: tts.ready.format};
        }"""
    )
    assert outcome["format"] == "pcm16"
    stats, sample_end = outcome["stats"], outcome["result"]["flushed"]["sample_end"]
    assert stats["decoder"] == "pcm16"
    assert stats["samplesDecoded"] == 2 * sample_end
    assert stats["position"] == sample_end


async def test_long_text_is_cut_to_the_gateway_limits(browser: Browser) -> None:
    """A text far over the message size and the pending-text limit of a tightly limited gateway
    is sent in pieces as room frees up: nothing is refused and all of it is spoken."""
    config = repo_config()
    limits = dataclasses.replace(config.limits, max_message_bytes=1024, max_pending_chars=400)
    running = await serve(dataclasses.replace(config, limits=limits), {"fake": ToneBackend()})
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{running.http_url}/")
        await page.evaluate("window.demo.loaded")
        outcome = await page.evaluate(
            """async () => {
              const { TtsGatewayClient } = await import('/client/tts-gateway.js');
              const tts = new TtsGatewayClient({ backend: 'fake', jitterMs: 0 });
              const errors = [];
              tts.addEventListener('error', (e) => errors.push(e.detail.code));
              const word = (i) => `w${i}` + 'é'.repeat(16);
              const text = Array.from({ length: 45 }, (_, i) => word(i)).join(' ') + '.';
              await tts.speak(text, { flush: false });
              const done = await tts.end();
              return { errors, length: Array.from(text).length, metrics: done.metrics,
                       bytes: new TextEncoder().encode(text).length,
                       heard: done.heard_text === text };
            }"""
        )
    finally:
        await context.close()
        await running.stop()
    assert outcome["errors"] == []
    assert outcome["length"] > 2 * 400
    assert outcome["bytes"] > 1024
    assert outcome["metrics"]["chars_received"] == outcome["length"]
    assert outcome["metrics"]["chars_spoken"] == outcome["length"]
    assert outcome["heard"]


# -- the demo as a playground (issue 18) ---------------------------------------------------------
# These run on espeak (fast, with native word timings) and the tone backend: no model needed.

COLOURS = (
    "Red, orange, yellow, green, blue, indigo, violet, white, black, grey, brown, pink, and gold."
)
OpenPlayground = Callable[..., Awaitable[DemoPage]]


@pytest.fixture(scope="session")
async def espeak_server(espeak: EspeakBackend, tone: ToneBackend) -> AsyncIterator[RunningServer]:
    """A gateway with espeak (the default here) and the tone backend. Adaptive chunking is off,
    as in the `server` fixture, so that a sentence after the first clause is one segment."""
    session = dataclasses.replace(
        SessionSettings(), default_backend="espeak", adaptive_chunking=False
    )
    # The insecure-page test opens the demo by another name: the gateway must answer to it.
    names = ("localhost", "127.0.0.1", INSECURE_HOST)
    server = dataclasses.replace(repo_config().server, allowed_hosts=names)
    running = await serve(repo_config(session=session, server=server),
                          {"espeak": espeak, "fake": tone})  # fmt: skip
    yield running
    await running.stop()


@pytest.fixture
async def playground(
    browser: Browser, espeak_server: RunningServer
) -> AsyncIterator[OpenPlayground]:
    """Opens the demo page in a fresh browser context: on the espeak gateway unless another is
    given, at a window size and colour scheme, from a host (INSECURE_HOST: not a secure
    context)."""
    contexts: list[BrowserContext] = []

    async def open_page(
        *,
        server: RunningServer | None = None,
        backend: str | None = "espeak",
        host: str = "127.0.0.1",
        width: int = 1280,
        height: int = 900,
        dark: bool = False,
    ) -> DemoPage:
        running = server or espeak_server
        context = await browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme="dark" if dark else "light",
        )
        contexts.append(context)
        page = await context.new_page()
        opened = DemoPage(page)
        page.on("pageerror", lambda error: opened.problems.append(str(error)))
        page.on("console", lambda m: opened.problems.append(m.text) if m.type == "error" else None)
        await page.goto(f"http://{host}:{running.port}/")
        await page.evaluate("window.demo.loaded")
        if backend is not None:
            await page.select_option("#backend", backend)
        return opened

    yield open_page
    for context in contexts:
        await context.close()


async def text_of(page: Page, selector: str) -> str:
    return await page.text_content(selector) or ""


async def speak_in_demo(page: Page, text: str) -> dict[str, Any]:
    """Type `text`, press Speak and wait for the request's result (or an error)."""
    before = await page.evaluate("demo.results.length")
    await page.fill("#text", text)
    await page.click("#speak")
    await wait_for(page, f"demo.results.length > {before} || demo.errors.length > 0")
    errors = await page.evaluate("demo.errors")
    assert errors == []
    result: dict[str, Any] = await page.evaluate(f"demo.results[{before}]")
    return result


async def test_heard_banner_shows_only_the_stopped_requests_text(
    playground: OpenPlayground,
) -> None:
    """Bug 1: the second request of a session showed the first one's text glued on."""
    page = (await playground()).page
    await speak_in_demo(page, SHORT)
    first = await page.evaluate("demo.words.length")
    await page.fill("#text", LONG)
    await page.click("#speak")
    await wait_for(page, f"demo.words.length >= {first + 4} || demo.errors.length > 0")
    await page.click("#stop")
    await wait_for(page, "demo.cancelled.length > 0 && demo.results.length > 1")
    state = await page.evaluate(
        """() => ({cancelled: demo.cancelled[0], errors: demo.errors,
                   shown: document.querySelector('#result').textContent,
                   heard: document.querySelector('#heard').textContent})"""
    )
    assert state["errors"] == []
    # The gateway's heard turn holds both requests (no cancel came between them)...
    assert state["cancelled"]["heard_text"].startswith(SHORT)
    # ...the page shows the part of the stopped request only.
    match = re.search(r"Heard: “([^”]*)”", state["shown"])
    assert match is not None, state["shown"]
    assert match.group(1).startswith("Here is")
    assert state["cancelled"]["heard_text"].endswith(match.group(1))
    assert LONG.startswith(match.group(1))
    assert LONG.startswith(state["heard"])


async def test_two_speaks_in_a_row_are_two_turns(playground: OpenPlayground) -> None:
    """Bug 2: two speak() calls in a row were joined with no separator ("quickly.The")."""
    page = (await playground()).page
    outcome = await page.evaluate(
        """async () => {
          const { TtsGatewayClient } = await import('/client/tts-gateway.js');
          const tts = new TtsGatewayClient({ backend: 'espeak' });
          const words = [];
          tts.addEventListener('word', (e) => words.push(e.detail.text));
          const results = await Promise.all([tts.speak('One quickly.'), tts.speak('The end.')]);
          // Text sent without a flush is continued as is: a word may be cut across calls.
          await tts.speak('Hel', { flush: false });
          const last = await tts.speak('lo there.');
          const text = tts.textSlice(0);
          await tts.end();
          await tts.close();
          // end() comes after the requests made before it.
          const other = new TtsGatewayClient({ backend: 'espeak' });
          const pending = [other.speak('Alpha.'), other.speak('Beta.')];
          const done = await other.end();
          const ended = {heard: done.heard_text,
                         results: (await Promise.all(pending)).map((r) => r.cancelled)};
          await other.close();
          return {words, text, results, last, ended};
        }"""
    )
    assert outcome["ended"] == {"heard": "Alpha. Beta.", "results": [False, False]}
    assert outcome["words"] == ["One", "quickly", "The", "end", "Hello", "there"]
    assert outcome["text"] == "One quickly. The end. Hello there."
    first, second = outcome["results"]
    assert not first["cancelled"]
    assert not second["cancelled"]
    assert (first["charStart"], first["charEnd"]) == (0, 12)
    assert (second["charStart"], second["charEnd"]) == (13, 21)
    assert (outcome["last"]["charStart"], outcome["last"]["charEnd"]) == (25, 34)
    assert second["sampleStart"] >= first["flushed"]["sample_end"]


async def test_speak_is_disabled_while_speaking(playground: OpenPlayground) -> None:
    """Bug 2 in the page: a double-click on Speak sent the text twice, glued together."""
    page = (await playground()).page
    text = "One two three. Four five."
    await page.fill("#text", text)
    await page.dblclick("#speak")
    await wait_for(page, "demo.results.length > 0 || demo.errors.length > 0")
    assert await page.evaluate("demo.errors") == []
    done = await page.evaluate("demo.client.end()")
    assert done["metrics"]["chars_received"] == len(text)
    assert await page.evaluate("demo.words.map((w) => w.text)") == words_of(text)
    await page.fill("#text", LONG)
    await page.click("#speak")
    assert await page.is_disabled("#speak")
    await page.click("#stop")
    await wait_for(page, "demo.results.length > 1")
    assert await page.is_enabled("#speak")


async def test_stop_silences_the_audio_left_after_a_lost_connection(
    playground: OpenPlayground,
) -> None:
    """Bug 3: after the connection dropped mid-speech the buffered audio played on and Stop
    was disabled. The page's audio is suspended while the gateway goes away, so that what
    was received is still buffered (no race with real-time playback)."""
    running = await serve(repo_config(), {"fake": ToneBackend("fake", chunk_delay_s=0.002)})
    try:
        page = (await playground(server=running, backend="fake")).page
        await page.fill("#text", " ".join(f"Word number {i}." for i in range(60)))
        await page.click("#speak")
        await wait_for(page, "demo.client !== null && demo.client.stats.aheadMs > 2000")
        await page.evaluate("demo.client._context.suspend()")
        await running.stop()
        await wait_for(page, "demo.errors.length > 0")
        assert await page.evaluate("demo.client.stats.bufferedMs") > 0
        assert await page.is_enabled("#stop")
        await page.evaluate("demo.client._context.resume()")
        await page.click("#stop")
        await wait_for(page, "!demo.client.stats.playing && demo.client.stats.bufferedMs === 0")
        await wait_for(page, "document.querySelector('#stop').disabled")
    finally:
        await running.stop()


async def test_an_insecure_page_plays_without_audio_worklet(playground: OpenPlayground) -> None:
    """Bug 4: on plain http from another host there is no AudioWorklet (nor WebCodecs); speak()
    failed with a raw TypeError. Now a scheduled-buffer player takes over."""
    opened = await playground(host=INSECURE_HOST)
    page = opened.page
    features = await page.evaluate(
        """() => ({secure: window.isSecureContext,
                   worklet: 'audioWorklet' in BaseAudioContext.prototype,
                   webcodecs: typeof AudioDecoder})"""
    )
    assert features == {"secure": False, "worklet": False, "webcodecs": "undefined"}
    result = await speak_in_demo(page, SHORT)
    state = await page.evaluate("({stats: demo.client.stats, words: demo.words})")
    stats = state["stats"]
    assert not result["cancelled"]
    assert stats["player"] == "scheduled"
    assert stats["decoder"] == "wasm"
    assert stats["position"] == result["flushed"]["sample_end"]
    assert [w["text"] for w in state["words"]] == words_of(SHORT)

    # Stop is silent at once there too.
    first = len(state["words"])
    await page.fill("#text", LONG)
    await page.click("#speak")
    await wait_for(page, f"demo.words.length >= {first + 4} || demo.errors.length > 0")
    await page.click("#stop")
    await wait_for(page, "demo.cancelled.length > 0 && demo.results.length > 1")
    stopped = await page.evaluate("demo.client.stats")
    assert not stopped["playing"]
    assert stopped["bufferedMs"] == 0
    await asyncio.sleep(1.0)
    assert await page.evaluate("demo.client.stats.position") == stopped["position"]

    # A client that insists on the AudioWorklet fails with a GatewayError, no session left open.
    refused = await page.evaluate(
        """async () => {
          const { TtsGatewayClient } = await import('/client/tts-gateway.js');
          const tts = new TtsGatewayClient({ backend: 'espeak', player: 'worklet' });
          try { await tts.speak('Hi.'); return {ok: true}; }
          catch (e) { return {name: e.name, code: e.code, state: tts.state}; }
        }"""
    )
    assert refused == {"name": "GatewayError", "code": "audio", "state": "closed"}
    assert opened.problems == []


async def test_the_page_fits_a_phone(playground: OpenPlayground) -> None:
    """Bug 5: at 390 px the meters made the page scroll sideways, and the selects and the
    number box were under the 24 px tap target."""
    page = (await playground(width=390, height=844)).page
    await page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    await speak_in_demo(page, SHORT)
    sizes = await page.evaluate(
        """() => {
          const small = [];
          const controls = 'button, select, input, textarea, summary';
          for (const element of document.querySelectorAll(controls)) {
            if (element.getClientRects().length === 0) continue;  // not displayed
            const boxed = ['checkbox', 'radio'].includes(element.type)
              ? element.closest('label') : element;
            const box = boxed.getBoundingClientRect();
            if (box.width < 24 || box.height < 24) {
              const name = element.id || element.outerHTML.slice(0, 50);
              small.push(`${name} ${box.width}x${box.height}`);
            }
          }
          const root = document.documentElement;
          return {scroll: root.scrollWidth, width: root.clientWidth, small};
        }"""
    )
    assert sizes["scroll"] <= sizes["width"]
    assert sizes["small"] == []


async def test_a_request_spoken_in_full_shows_done(playground: OpenPlayground) -> None:
    """Bug 6: the last word stayed highlighted and nothing said the request was done."""
    page = (await playground()).page
    await speak_in_demo(page, SHORT)
    shown = await page.evaluate(
        """() => ({heard: document.querySelector('#heard').textContent,
                   current: document.querySelector('#current').textContent,
                   upcoming: document.querySelector('#upcoming').textContent,
                   state: document.querySelector('#state')?.textContent ?? ''})"""
    )
    assert shown == {"heard": SHORT, "current": "", "upcoming": "", "state": "Done"}


async def test_a_stop_after_a_word_keeps_its_punctuation_heard(playground: OpenPlayground) -> None:
    """Bug 6: stopping in the pause after a word struck through the comma or full stop that
    follows it, which the listener had heard."""
    page = (await playground()).page
    await page.fill("#text", COLOURS)
    await page.click("#speak")
    await wait_for(page, "demo.words.length >= 5 || demo.errors.length > 0")
    await page.click("#stop")
    await wait_for(page, "demo.cancelled.length > 0 && demo.results.length > 0")
    state = await page.evaluate(
        """() => ({cancelled: demo.cancelled[0],
                   heard: document.querySelector('#heard').textContent,
                   upcoming: document.querySelector('#upcoming').textContent})"""
    )
    cut = state["cancelled"]["cut"]
    # The gateway's cut is at the end of a word; a comma follows it (one segment after the first
    # clause: the stop comes after the fifth word, before the last).
    assert COLOURS[cut] == ","
    assert state["heard"] == COLOURS[: cut + 2]
    assert state["upcoming"] == COLOURS[cut + 2 :]


async def contrast_failures(page: Page) -> list[str]:
    """Text whose contrast with the background under it is under 4.5:1 (WCAG AA), computed from
    the page's styles."""
    failures: list[str] = await page.evaluate(
        """() => {
          const rgba = (text) => {
            const [r, g, b, a = 1] = text.match(/[\\d.]+/g).map(Number);
            return [r, g, b, a];
          };
          const over = ([r, g, b, a], [R, G, B]) =>
            [r * a + R * (1 - a), g * a + G * (1 - a), b * a + B * (1 - a)];
          const background = (element) => {
            const layers = [];
            for (let e = element; e; e = e.parentElement) {
              const colour = rgba(getComputedStyle(e).backgroundColor);
              if (colour[3] > 0) layers.push(colour);
              if (colour[3] === 1) break;
            }
            let base = [255, 255, 255];
            for (const layer of layers.reverse()) base = over(layer, base);
            return base;
          };
          const luminance = (rgb) => {
            const [r, g, b] = rgb.map((v) => {
              const c = v / 255;
              return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
            });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
          };
          const failures = [];
          for (const element of document.querySelectorAll('body *')) {
            if (element.getClientRects().length === 0 || element.disabled) continue;
            if (['SCRIPT', 'STYLE', 'OPTION', 'METER'].includes(element.tagName)) continue;
            const own = [...element.childNodes].some(
              (n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
            if (!own && !['upcoming', 'heard', 'current'].includes(element.id)) continue;
            const back = background(element);
            const fore = over(rgba(getComputedStyle(element).color), back);
            const [hi, lo] = [luminance(fore), luminance(back)].sort((a, b) => b - a);
            const ratio = (hi + 0.05) / (lo + 0.05);
            if (ratio < 4.5) {
              failures.push(`${element.tagName}#${element.id}.${element.className}: ` +
                            `${ratio.toFixed(2)}`);
            }
          }
          return failures;
        }"""
    )
    return failures


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
async def test_text_has_enough_contrast(playground: OpenPlayground, dark: bool) -> None:
    """Bug 7: unheard text was #999 on white (2.85:1); and there was no dark scheme."""
    page = (await playground(dark=dark)).page
    await page.fill("#text", LONG)
    await page.click("#speak")
    await wait_for(page, "demo.words.length >= 3 || demo.errors.length > 0")
    assert await contrast_failures(page) == []
    await page.click("#stop")
    await wait_for(page, "demo.cancelled.length > 0 && demo.results.length > 0")
    assert await contrast_failures(page) == []
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    channels = [int(v) for v in re.findall(r"\d+", background)[:3]]
    assert (max(channels) < 80) if dark else (min(channels) > 200)


async def test_gauges_are_quiet_and_the_state_is_announced(playground: OpenPlayground) -> None:
    """Bug 7: six <output> elements (live regions) updated every frame, so a screen reader read
    numbers non-stop. Now they are plain text; one polite status says what is going on."""
    page = (await playground()).page
    await speak_in_demo(page, SHORT)
    live = await page.evaluate(
        """() => {
          const isLive = (element) => {
            for (let e = element; e; e = e.parentElement) {
              const live = e.getAttribute('aria-live');
              if (live === 'off') return false;
              if (live === 'polite' || live === 'assertive') return true;
              if (['status', 'alert', 'log', 'timer', 'marquee'].includes(e.getAttribute('role')))
                return true;
              if (e.tagName === 'OUTPUT') return true;
            }
            return false;
          };
          const gauges = [...document.querySelectorAll('#gauges dd, #gauges dd *')];
          const state = document.querySelector('#state');
          return {gauges: gauges.filter(isLive).map((e) => e.id || e.tagName),
                  outputs: document.querySelectorAll('output').length,
                  state: state && {live: isLive(state), text: state.textContent}};
        }"""
    )
    assert live["gauges"] == []
    assert live["outputs"] == 0
    assert live["state"] == {"live": True, "text": "Done"}


async def test_keyboard_shortcuts_speak_and_stop(playground: OpenPlayground) -> None:
    """Bug 7: no keyboard shortcut to speak (Ctrl+Enter) or stop (Esc)."""
    page = (await playground()).page
    await page.fill("#text", LONG)
    await page.focus("#text")
    await page.keyboard.press("Control+Enter")
    await wait_for(page, "demo.words.length >= 3 || demo.errors.length > 0")
    assert await page.input_value("#text") == LONG  # no line break typed
    await page.keyboard.press("Escape")
    await wait_for(page, "demo.cancelled.length > 0 && demo.results.length > 0")
    assert (await page.evaluate("demo.results[0]"))["cancelled"]
    assert await page.get_attribute("#speak", "aria-keyshortcuts") == "Control+Enter Meta+Enter"
    assert await page.get_attribute("#stop", "aria-keyshortcuts") == "Escape"


async def test_the_voice_list_is_small_and_sorted_by_name(playground: OpenPlayground) -> None:
    """Bug 8: /v1/voices was 163 KB (every espeak voice listed all its languages), and the
    espeak voices repeated names and were sorted by code."""
    page = (await playground()).page
    listed = await page.evaluate(
        """async () => {
          const text = await (await fetch('/v1/voices')).text();
          const options = [...document.querySelectorAll('#voice option')]
            .map((o) => ({value: o.value, label: o.textContent}));
          return {size: text.length, body: JSON.parse(text), options};
        }"""
    )
    assert listed["size"] < 40_000
    espeak = [v for v in listed["body"]["voices"] if v["backend"] == "espeak"]
    names = [v["name"] for v in espeak if v["id"] != "auto"]
    assert names == sorted(names, key=str.casefold)
    assert len(set(names)) == len(names)
    languages = listed["body"]["languages"]["espeak"]
    assert {"en-us", "en-gb", "de", "fr-fr"} <= set(languages)
    english = next(v for v in espeak if v["name"] == "English (Great Britain)")
    assert set(english["languages"]) == {"en", "en-gb"}
    # The page lists them in that order.
    labels = [o["label"] for o in listed["options"] if o["value"] not in ("", "auto")]
    assert [label.split(" (")[0] for label in labels] == [n.split(" (")[0] for n in names]


async def test_state_reads_closed_after_close(playground: OpenPlayground) -> None:
    """Bug 9: client.state still read "open" right after close()."""
    page = (await playground()).page
    states = await page.evaluate(
        """async () => {
          const { TtsGatewayClient } = await import('/client/tts-gateway.js');
          const tts = new TtsGatewayClient({ backend: 'espeak' });
          await tts.connect();
          const open = tts.state;
          await tts.close();
          const closed = tts.state;
          // Closed while connecting: the session that opens meanwhile is closed too.
          const other = new TtsGatewayClient({ backend: 'espeak' });
          const connecting = other.connect().then(() => 'opened', (e) => e.code);
          const during = other.state;
          await other.close();
          return [open, closed, during, other.state, await connecting, other.state];
        }"""
    )
    assert states == ["open", "closed", "connecting", "closed", "connection_closed", "closed"]


# -- the playground's controls, driven through the page ------------------------------------------


async def ready_of(page: Page) -> dict[str, Any]:
    ready: dict[str, Any] = await page.evaluate("demo.client.ready")
    return ready


async def test_speed_language_and_voice_reach_the_session(playground: OpenPlayground) -> None:
    page = (await playground()).page
    languages = await page.evaluate(
        "[...document.querySelectorAll('#lang option')].map(o => o.value)"
    )
    assert languages[0] == ""
    assert {"de", "en-us", "fr-fr"} <= set(languages)
    # Find a voice by name; picking it moves the language to the one it reads.
    await page.fill("#voice-search", "german")
    options = await page.evaluate(
        "[...document.querySelectorAll('#voice option')].map(o => [o.value, o.textContent])"
    )
    assert options
    assert all("german" in label.lower() for _, label in options)
    assert "match" in await text_of(page, "#voice-count")
    await page.select_option("#voice", "de")
    assert await page.input_value("#lang") == "de"
    await page.fill("#speed", "1.5")
    await page.dispatch_event("#speed", "input")
    assert await text_of(page, "#speed-value") == "1.50\N{MULTIPLICATION SIGN}"
    result = await speak_in_demo(page, "Guten Morgen. Wie geht es dir?")
    assert not result["cancelled"]
    ready = await ready_of(page)
    assert (ready["backend"], ready["voice"], ready["lang"], ready["speed"]) == (
        "espeak", "de", "de", 1.5
    )  # fmt: skip
    # "auto" follows the language list.
    await page.fill("#voice-search", "")
    await page.select_option("#voice", "auto")
    await page.select_option("#lang", "fr-fr")
    await speak_in_demo(page, "Bonjour.")
    ready = await ready_of(page)
    assert (ready["voice"], ready["lang"]) == ("auto", "fr-fr")


async def test_a_voice_preview_speaks_in_the_chosen_voice(playground: OpenPlayground) -> None:
    page = (await playground()).page
    await page.fill("#voice-search", "english great")
    await page.select_option("#voice", "en-gb")
    await page.click("#preview")
    await wait_for(page, "demo.previews.length > 0 || demo.errors.length > 0")
    assert await page.evaluate("demo.errors") == []
    previewed = await page.evaluate("demo.previews[0]")
    assert previewed["ready"]["voice"] == "en-gb"
    assert not previewed["result"]["cancelled"]
    assert "English (Great Britain)" in previewed["text"]
    await wait_for(page, "!document.querySelector('#preview').disabled")
    # A preview is not a request of the session: nothing in the history.
    assert await page.evaluate("document.querySelectorAll('#history li').length") == 0


@pytest.mark.model
async def test_kokoro_voices_mix_in_the_page(demo: Callable[..., Any]) -> None:
    page = (await demo()).page
    await page.select_option("#backend", "fake")
    assert await page.is_hidden("#blend")
    await page.select_option("#backend", "kokoro")
    assert await page.is_visible("#blend")
    await page.select_option("#voice", "jf_alpha")
    await page.select_option("#blend-voice", "jm_kumo")
    await page.fill("#weight-a", "2")
    await page.dispatch_event("#weight-a", "input")
    assert await text_of(page, "#blend-value") == "Voice: jf_alpha(2)+jm_kumo(1)"
    await page.fill("#text", "Hi there.")
    await page.click("#speak")
    await wait_for(page, "demo.results.length > 0 || demo.errors.length > 0")
    assert await page.evaluate("demo.errors") == []
    assert (await ready_of(page))["voice"] == "jf_alpha(2)+jm_kumo(1)"


def ogg_pages(data: bytes) -> list[tuple[int, int, bytes]]:
    """(header type, granule position, body) of each page; checks each page's CRC."""
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    pages = []
    at = 0
    while at < len(data):
        assert data[at : at + 4] == b"OggS"
        kind, granule, _, _, crc, count = struct.unpack_from("<BqIIIB", data, at + 5)
        lacing = data[at + 27 : at + 27 + count]
        end = at + 27 + count + sum(lacing)
        page = bytearray(data[at:end])
        page[22:26] = b"\0\0\0\0"
        check = 0
        for byte in page:
            check = ((check << 8) & 0xFFFFFFFF) ^ table[((check >> 24) & 0xFF) ^ byte]
        assert check == crc
        pages.append((kind, granule, bytes(data[at + 27 + count : end])))
        at = end
    return pages


async def test_history_replays_and_downloads_what_was_spoken(playground: OpenPlayground) -> None:
    page = (await playground()).page
    result = await speak_in_demo(page, SHORT)
    turn = await page.evaluate(
        """() => { const t = demo.turns[0];
                   return {status: t.status, start: t.recording.sampleStart,
                           end: t.recording.sampleEnd, seconds: t.recording.durationS}; }"""
    )
    assert turn["status"] == "done"
    assert turn["start"] == result["sampleStart"]
    assert turn["end"] == result["flushed"]["sample_end"]
    entry = page.locator("#history li").first
    assert "Spoken in full" in (await entry.text_content() or "")

    # Replay: the page's audio player plays the recording to its end.
    replay = await entry.locator("audio").evaluate(
        """async (audio) => {
          await new Promise((resolve) => audio.readyState >= 1 ? resolve()
                                          : audio.addEventListener('loadedmetadata', resolve));
          const ended = new Promise((resolve) => audio.addEventListener('ended', resolve));
          await audio.play();
          await ended;
          return {duration: audio.duration, position: audio.currentTime};
        }"""
    )
    assert replay["duration"] == pytest.approx(turn["seconds"], abs=0.03)
    assert replay["position"] == pytest.approx(turn["seconds"], abs=0.03)

    # Ogg Opus: the packets as sent, trimmed to the request's audio by the granule positions.
    async with page.expect_download() as ogg_download:
        await entry.get_by_text("Download Ogg Opus").click()
    ogg = await asyncio.to_thread(Path(await (await ogg_download.value).path()).read_bytes)
    assert (await ogg_download.value).suggested_filename.endswith(".ogg")
    pages = ogg_pages(ogg)
    assert pages[0][2].startswith(b"OpusHead")
    assert pages[1][2].startswith(b"OpusTags")
    pre_skip = struct.unpack_from("<H", pages[0][2], 10)[0]
    assert pages[-1][0] & 0x04  # end of stream
    assert pages[-1][1] - pre_skip == 2 * (turn["end"] - turn["start"])
    with av.open(io.BytesIO(ogg), "r") as container:
        decoded = sum(int(frame.samples) for frame in container.decode(audio=0))
    assert decoded >= 2 * (turn["end"] - turn["start"])

    # WAV: 16-bit PCM at 24 kHz, exactly the request's audio, not silent.
    async with page.expect_download() as wav_download:
        await entry.get_by_text("Download WAV").click()
    with wave.open(str(await (await wav_download.value).path()), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
        assert wav.getnframes() == turn["end"] - turn["start"]
        samples = wav.readframes(wav.getnframes())
    assert max(abs(v) for (v,) in struct.iter_unpack("<h", samples)) > 3000

    # A stopped request keeps what was heard; the newest request comes first.
    await page.fill("#text", LONG)
    await page.click("#speak")
    await wait_for(page, f"demo.words.length >= {len(words_of(SHORT)) + 4}")
    await page.click("#stop")
    await wait_for(page, "demo.results.length > 1")
    stopped = await page.evaluate(
        """() => { const t = demo.turns[1];
                   return {status: t.status, end: t.recording.sampleEnd,
                           position: demo.cancelled[0].position,
                           first: document.querySelector('#history li').textContent}; }"""
    )
    assert stopped["status"] == "stopped"
    assert stopped["end"] == stopped["position"]
    assert stopped["first"].startswith("“Here is")
    assert "Stopped" in stopped["first"]


async def test_characters_and_estimate_before_speaking(playground: OpenPlayground) -> None:
    page = (await playground()).page
    text = "Twelve words are here to be priced before anyone hears them, ok?"
    await page.fill("#text", text)
    await wait_for(page, f"demo.estimate && demo.estimate.chars === {len(text)}")
    assert await text_of(page, "#chars") == f"{len(text)} characters"
    shown = await text_of(page, "#estimate")
    assert "of speech" in shown
    assert "free" in shown
    normal = await page.evaluate("demo.estimate.audio_s")
    await page.fill("#speed", "2")
    await page.dispatch_event("#speed", "input")
    await wait_for(page, f"demo.estimate.audio_s < {normal}")
    assert await page.evaluate("demo.estimate.audio_s") == pytest.approx(normal / 2, abs=0.02)
    await page.fill("#text", "   ")
    await wait_for(page, "document.querySelector('#estimate').textContent === 'nothing to speak'")
    assert await text_of(page, "#chars") == "3 characters"


async def test_the_state_follows_a_request(playground: OpenPlayground) -> None:
    page = (await playground()).page
    await speak_in_demo(page, SHORT)
    states = await page.evaluate("demo.states")
    order = ["connecting", "generating", "speaking", "done"]
    assert [s for s in states if s in order] == order
    assert await page.get_attribute("#state", "data-state") == "done"


async def test_errors_are_told_in_words(playground: OpenPlayground) -> None:
    page = (await playground(backend="fake")).page
    await page.fill("#text", "One two. Three FAILNOW four. Five six.")
    await page.click("#speak")
    await wait_for(page, "demo.results.length > 0 && demo.errors.length > 0")
    status = page.locator("#status")
    assert (await status.locator("strong").text_content() or "") == (
        "The engine failed on part of the text; that part was skipped."
    )
    assert (await status.locator(".detail").text_content() or "").startswith("backend_error: ")
    assert await page.evaluate("demo.errorCodes") == ["backend_error"]


async def test_queue_speaks_after_the_current_request(playground: OpenPlayground) -> None:
    page = (await playground()).page
    await page.fill("#text", "First of all, this is a sentence long enough to queue after it.")
    await page.click("#speak")
    await wait_for(page, "demo.words.length >= 1")
    await page.fill("#text", "Then this.")
    await page.click("#queue")
    await wait_for(page, "demo.results.length > 1 || demo.errors.length > 0")
    state = await page.evaluate(
        """() => ({turns: demo.turns.map((t) => [t.status, t.charStart, t.charEnd]),
                   text: demo.client.textSlice(0), words: demo.words.map((w) => w.text),
                   heard: document.querySelector('#heard').textContent})"""
    )
    first = "First of all, this is a sentence long enough to queue after it."
    assert state["text"] == f"{first} Then this."
    assert state["turns"] == [
        ["done", 0, len(first)],
        ["done", len(first) + 1, len(first) + 11],
    ]
    assert state["words"][-2:] == ["Then", "this"]
    assert state["heard"] == "Then this."
    assert await page.evaluate("document.querySelectorAll('#history li').length") == 2


async def test_the_code_panel_matches_the_settings_and_runs(
    playground: OpenPlayground, espeak_server: RunningServer, tmp_path: Path
) -> None:
    opened = await playground()
    page = opened.page
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.select_option("#voice", "de")
    await page.fill("#speed", "1.25")
    await page.dispatch_event("#speed", "input")
    await page.fill("#text", "Guten Tag, it's a test.")
    await page.click("#code summary")
    python = await text_of(page, "#code-text")
    for line in ('backend="espeak"', 'voice="de"', 'lang="de"', "speed=1.25",
                 '"Guten Tag, it\'s a test."'):  # fmt: skip
        assert line in python

    # The Python code runs as shown (writing its file elsewhere).
    out = tmp_path / "speech.wav"
    script = python.replace('"speech.wav"', json.dumps(str(out)))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout(120))
    assert process.returncode == 0, stderr.decode()
    assert "Guten" in stdout.decode()
    assert out.stat().st_size > 10_000

    # curl: its JSON body is a valid speech request.
    await page.click("[data-code='curl']")
    curl = await text_of(page, "#code-text")
    match = re.search(r"-d '(.*)' \\", curl)
    assert match is not None
    body = json.loads(match.group(1).replace("'\\''", "'"))
    assert body == {
        "model": "espeak", "voice": "de", "lang": "de", "speed": 1.25,
        "input": "Guten Tag, it's a test.", "response_format": "opus",
    }  # fmt: skip
    if shutil.which("curl") is not None:  # the command runs as shown
        process = await asyncio.create_subprocess_exec(
            "bash", "-c", curl, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout(120))
        assert process.returncode == 0, stderr.decode()
        audio = await asyncio.to_thread((tmp_path / "speech.ogg").read_bytes)
    else:
        async with httpx.AsyncClient(base_url=espeak_server.http_url) as http:
            audio = (await http.post("/v1/audio/speech", json=body)).content
    assert audio.startswith(b"OggS")

    # JavaScript: the module runs in the page as shown.
    await page.click("[data-code='js']")
    code = await text_of(page, "#code-text")
    assert 'voice: "de"' in code
    assert "speed: 1.25" in code
    ran = await page.evaluate(
        """async (code) => {
          const url = URL.createObjectURL(new Blob(
            [code + '\\nwindow.snippet = {result, ready: tts.ready};'], {type: 'text/javascript'}));
          await import(url);
          return window.snippet;
        }""",
        code,
    )
    assert not ran["result"]["cancelled"]
    assert (ran["ready"]["voice"], ran["ready"]["speed"]) == ("de", 1.25)

    # Copy puts it on the clipboard.
    await page.click("#copy")
    await wait_for(page, "document.querySelector('#copied').textContent === 'Copied.'")
    assert await page.evaluate("navigator.clipboard.readText()") == code
    assert opened.problems == []


async def test_a_gateway_that_requires_a_key(playground: OpenPlayground) -> None:
    """A gateway reachable from other hosts requires credentials: the page says so, takes a
    key, and the client sends it (or a token from a function) with each session."""
    key = "k-0123456789abcdef-playground"
    auth = AuthSettings(required=AuthRequired.YES, api_keys=(key,))
    running = await serve(repo_config(auth=auth), {"fake": ToneBackend("fake")})
    try:
        page = (await playground(server=running, backend=None)).page
        assert await page.evaluate("demo.errorCodes") == ["unauthorized"]
        assert await page.locator("#status strong").text_content() == (
            "The gateway needs an API key or a token."
        )
        await page.fill("#token", key)
        await page.dispatch_event("#token", "change")
        await wait_for(page, "demo.voices.length > 0")
        assert await text_of(page, "#status") == ""  # the complaint is gone
        await page.evaluate("demo.errors.length = 0")
        await page.select_option("#backend", "fake")
        result = await speak_in_demo(page, "One two three.")
        assert not result["cancelled"]
        await wait_for(page, "demo.estimate !== null")
        await page.click("#code summary")
        await page.click("[data-code='curl']")
        assert '-H "Authorization: Bearer $TTS_GATEWAY_KEY"' in await text_of(page, "#code-text")
        assert key not in await text_of(page, "#code-text")

        # The client's token option: a function called for each session (here: a fresh token
        # from POST /v1/tokens), or a string; a bad one fails to connect.
        outcome = await page.evaluate(
            """async (key) => {
              const { TtsGatewayClient } = await import('/client/tts-gateway.js');
              let fetched = 0;
              const token = async () => {
                fetched++;
                const response = await fetch('/v1/tokens', {
                  method: 'POST', headers: { Authorization: `Bearer ${key}` } });
                return (await response.json()).token;
              };
              const tts = new TtsGatewayClient({ backend: 'fake', token });
              const first = await tts.speak('Four five.');
              await tts.end();
              const second = await tts.speak('Six.');  // a new session: a new token
              await tts.close();
              const bad = new TtsGatewayClient({ backend: 'fake', token: 'not-a-valid-token',
                                                 reconnect: { attempts: 0 } });
              const refused = await bad.connect().then(() => null, (e) => e.code);
              return {first: first.cancelled, second: second.cancelled, fetched, refused};
            }""",
            key,
        )
        assert outcome == {"first": False, "second": False, "fetched": 2,
                           "refused": "connect_failed"}  # fmt: skip
    finally:
        await running.stop()
