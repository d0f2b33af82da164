"""Cross-origin requests: the REST API, the JS client and the token endpoint answer pages of
``auth.allowed_origins`` (and their preflights), nobody else; checked with HTTP and with a page
on another origin in Debian's chromium.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.fakes import ToneBackend
from tests.servers import serve_app
from tests.test_browser import EXECUTABLE, browser  # noqa: F401 - the fixture

APP = "https://app.example"
OTHER = "https://elsewhere.example"


@pytest.fixture(scope="module")
async def gateway(request: pytest.FixtureRequest) -> AsyncIterator[RunningServer]:
    origins: tuple[str, ...] = getattr(request, "param", (APP,))
    config = repo_config()
    auth = dataclasses.replace(config.auth, allowed_origins=origins)
    running = await serve(dataclasses.replace(config, auth=auth), {"kokoro": ToneBackend("kokoro")})
    yield running
    await running.stop()


async def preflight(server: RunningServer, path: str, origin: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        return await http.options(path, headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        })  # fmt: skip


@pytest.mark.parametrize("path", ["/v1/audio/speech", "/v1/tokens", "/v1/estimate"])
async def test_preflight_from_an_allowed_origin(gateway: RunningServer, path: str) -> None:
    response = await preflight(gateway, path, APP)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed


async def test_requests_from_an_allowed_origin_can_be_read(gateway: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url, headers={"Origin": APP}) as http:
        speech = await http.post(
            "/v1/audio/speech", json={"input": "Hi.", "response_format": "wav"}
        )
        client = await http.get("/client/tts-gateway.js")
        token = await http.post("/v1/tokens")
    for response in (speech, client, token):
        assert response.headers["access-control-allow-origin"] == APP
        assert "origin" in response.headers["vary"].lower()
    assert speech.status_code == 200
    assert "x-tts-voice" in speech.headers["access-control-expose-headers"].lower()
    assert client.status_code == 200
    assert token.status_code == 401  # no key configured: refused, and the page can read why


async def test_other_origins_get_no_cors(gateway: RunningServer) -> None:
    response = await preflight(gateway, "/v1/audio/speech", OTHER)
    assert response.status_code == 403  # the browser policy refuses the origin first
    assert "access-control-allow-origin" not in response.headers
    async with httpx.AsyncClient(base_url=gateway.http_url, headers={"Origin": OTHER}) as http:
        voices = await http.get("/v1/audio/voices")
    assert "access-control-allow-origin" not in voices.headers


async def test_off_by_default() -> None:
    running = await serve(repo_config(), {"kokoro": ToneBackend("kokoro")})
    try:
        response = await preflight(running, "/v1/audio/speech", APP)
        async with httpx.AsyncClient(base_url=running.http_url, headers={"Origin": APP}) as http:
            voices = await http.get("/v1/audio/voices")
    finally:
        await running.stop()
    assert response.status_code == 403  # the browser policy refuses the origin first
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in voices.headers


# -- a page on another origin in chromium ------------------------------------------------------

PAGE = """<!doctype html><script type="module">
const gateway = new URL(location.href).searchParams.get("gateway");
try {
  const client = await import(gateway + "/client/tts-gateway.js");
  const speech = await fetch(gateway + "/v1/audio/speech", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({input: "Hello from another origin.", response_format: "wav"})});
  const audio = await speech.arrayBuffer();
  window.result = {imported: typeof client.TtsGatewayClient, status: speech.status,
                   bytes: audio.byteLength, voice: speech.headers.get("X-TTS-Voice")};
} catch (error) {
  window.result = {error: String(error)};
}
</script>"""


@pytest.mark.skipif(EXECUTABLE is None, reason="Debian's chromium is not installed")
@pytest.mark.parametrize("allowed", [True, False])
async def test_a_page_on_another_origin_imports_the_client_and_calls_the_api(
    browser: Browser,  # noqa: F811 - the fixture
    allowed: bool,
) -> None:
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    site = await serve_app(Starlette(routes=[Route("/", page)]))
    origins = (site.url,) if allowed else (OTHER,)
    config = repo_config()
    auth = dataclasses.replace(config.auth, allowed_origins=origins)
    running = await serve(dataclasses.replace(config, auth=auth), {"kokoro": ToneBackend("kokoro")})
    context = await browser.new_context()
    try:
        tab = await context.new_page()
        await tab.goto(f"{site.url}/?gateway={running.http_url}")
        await tab.wait_for_function("window.result !== undefined", timeout=timeout(30) * 1000)
        result = await tab.evaluate("window.result")
    finally:
        await context.close()
        await running.stop()
        await site.stop()
    if allowed:
        assert result["imported"] == "function"
        assert result["status"] == 200
        assert result["bytes"] > 44
        assert result["voice"] == "tone"
    else:
        assert "error" in result  # the browser kept the page out
