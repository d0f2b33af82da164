"""Take the demo page's screenshots in this directory: desktop and phone, light and dark.

Starts a gateway with the repository's configuration (Kokoro, espeak, Piper) on a free loopback
port, drives Debian's chromium with Playwright (never a browser downloaded by Playwright), speaks
a sentence in full and interrupts a second one, and saves full-page PNGs:

    .venv/bin/python docs/screenshots/make_screenshots.py     # or: make screenshots
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

from gateway.config import load_config
from gateway.server.run import serve_in_background

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--hide-scrollbars",
]
LAYOUTS = {"desktop": (1280, 900), "phone": (390, 844)}
FIRST = "Good morning! The weather is sunny today, with a light breeze from the sea."
SECOND = (
    "Here is a longer answer, so that there is time to interrupt it. First, the gateway cuts "
    "the text into sentences. Then it synthesizes each one and streams the audio back."
)
WAIT_MS = 120_000


async def wait(page: Page, condition: str) -> None:
    await page.wait_for_function(condition, timeout=WAIT_MS)


async def shoot(browser: Browser, port: int, layout: str, scheme: str) -> Path:
    width, height = LAYOUTS[layout]
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    try:
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.evaluate("window.demo.loaded")
        await page.select_option("#backend", "kokoro")
        await page.select_option("#voice", "jf_alpha")
        await page.select_option("#blend-voice", "jm_kumo")
        await page.fill("#speed", "1.1")
        await page.dispatch_event("#speed", "input")
        await page.fill("#text", FIRST)
        await page.click("#speak")
        await wait(page, "demo.results.length > 0 || demo.errors.length > 0")
        await page.fill("#text", SECOND)
        await page.click("#speak")
        await wait(page, "demo.words.length >= 22 || demo.errors.length > 0")
        await page.click("#stop")
        await wait(page, "demo.results.length > 1 || demo.errors.length > 0")
        await page.evaluate("document.querySelector('#code').open = true")
        await page.click("[data-code='js']")
        # The audio players of the history have loaded their length, the estimate is shown.
        await wait(
            page,
            "[...document.querySelectorAll('audio')].every((a) => a.readyState >= 1) && "
            "!document.querySelector('#estimate').textContent.includes('estimating')",
        )
        path = HERE / f"{layout}-{scheme}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path
    finally:
        await context.close()


async def main() -> None:
    config = load_config(REPO / "config.toml", environ={})
    server = dataclasses.replace(config.server, port=0, log_level="warning")
    running = await serve_in_background(dataclasses.replace(config, server=server))
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for layout in LAYOUTS:
                for scheme in ("light", "dark"):
                    print(await shoot(browser, running.port, layout, scheme))
            await browser.close()
    finally:
        await running.stop()


if __name__ == "__main__":
    asyncio.run(main())
