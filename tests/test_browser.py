"""The browser client and the demo page in Debian's chromium, driven by Playwright.

The page is loaded from a real gateway (real Kokoro and the fast tone backend), the client
decodes the real Opus stream with WebCodecs, or with the WebAssembly decoder on a page where
WebCodecs is removed, and plays it through an AudioWorklet in real time (headless chromium runs
its audio clock without a sound card). Every wait is for a condition, with a generous deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.fakes import ToneBackend

CHROMIUM = "/usr/bin/chromium"
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
    # The transcript shows the text up to the last word, that word highlighted.
    assert state["current"] == announced[-1]["text"]
    assert state["heard"] + state["current"] == SHORT[: announced[-1]["char_end"]]

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
        assert "tts-gateway demo" in page.text
        imported = re.findall(r'from "(/client/[^"]+)"', page.text)
        assert imported == ["/client/tts-gateway.js"]
        for path in (
            "/client/tts-gateway.js",
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
