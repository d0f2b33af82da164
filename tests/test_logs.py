"""Keys and tokens never reach the logs, at any level (issue 19, item 3): the gateway's logging
as ``tts-gateway serve`` sets it up, with every way a client can present a credential."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import msgpack
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from gateway.config import AuthRequired, AuthSettings
from gateway.server.logs import REDACTED, configure_logging, redact
from tests.conftest import repo_config, serve
from tests.fakes import ToneBackend

KEY = "k-logs-0123456789abcdef-first"
SECOND_KEY = "k-logs-0123456789abcdef-second"
WRONG_KEY = "k-logs-not-a-configured-key-xyz"
LEVELS = ("debug", "info", "warning", "error", "critical")


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """The process's log output, set up as the serve command does (restored afterwards)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uvicorn_saved = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    stream = io.StringIO()
    yield stream
    root.handlers[:], root.level = saved
    for name, (handlers, propagate) in uvicorn_saved.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate


async def present_every_credential(http_url: str, ws_url: str) -> str:
    """Use the gateway with keys and a token in every place a client may put them; returns
    the token."""
    bearer = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=http_url) as http:
        token = (await http.post("/v1/tokens", headers=bearer)).json()["token"]
        await http.get(f"/healthz?api_key={KEY}")  # the access log shows query strings
        await http.get("/v1/voices", headers={"Authorization": f"Bearer {WRONG_KEY}"})
    sessions: list[tuple[str, dict[str, Any]]] = [
        (ws_url, {"additional_headers": bearer}),
        (ws_url, {"subprotocols": [Subprotocol("tts-gateway"), Subprotocol(f"bearer.{KEY}")]}),
        (ws_url, {"subprotocols": [Subprotocol("tts-gateway"), Subprotocol(f"bearer.{token}")]}),
        (f"{ws_url}?key={SECOND_KEY}", {"additional_headers": bearer}),
        (ws_url, {"additional_headers": {"Authorization": WRONG_KEY}}),  # no scheme: ignored
    ]
    for url, options in sessions:
        async with ws_connect(url, compression=None, **options) as socket:
            if "subprotocols" not in options and "Bearer" not in str(options):
                await socket.send(msgpack.packb({"type": "auth", "token": SECOND_KEY}))
            await socket.send(msgpack.packb({"type": "start"}))
            await socket.recv()
    with pytest.raises(InvalidStatus):
        async with ws_connect(ws_url, additional_headers={"Authorization": f"Bearer {WRONG_KEY}"}):
            pass  # pragma: no cover
    return str(token)


@pytest.mark.parametrize("level", LEVELS)
async def test_no_key_or_token_is_logged_at_any_level(level: str, output: io.StringIO) -> None:
    configure_logging(level, stream=output)
    config = repo_config(auth=AuthSettings(required=AuthRequired.YES, api_keys=(KEY, SECOND_KEY)))
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, log_level=level))
    running = await serve(config, {"kokoro": ToneBackend("kokoro")})
    try:
        token = await present_every_credential(running.http_url, running.ws_url)
    finally:
        await running.stop()
    logged = output.getvalue()
    for secret in (KEY, SECOND_KEY, WRONG_KEY, token):
        assert secret not in logged, f"a secret is in the {level} log"
    if level == "debug":  # where the headers and frames are logged: they are, without secrets
        assert f"Authorization: {REDACTED}" in logged
        assert f"bearer.{REDACTED}\n" in logged
        assert "BINARY (payload not logged)" in logged
    if level in ("debug", "info"):
        assert f"/healthz?api_key={REDACTED}" in logged  # the access log


def test_what_redaction_leaves() -> None:
    line = (
        "< GET /v1/stream?key=abc&x=1 HTTP/1.1 Authorization: Basic Zm9v "
        "Sec-WebSocket-Protocol: tts-gateway, bearer.tgw1.0a1b2c3d.99.sig-nat_ure "
        "token tgw1.0a1b2c3d.1234.AbC-_x"
    )
    assert redact(line) == (
        f"< GET /v1/stream?key={REDACTED}&x={REDACTED} HTTP/1.1 Authorization: {REDACTED}, "
        f"bearer.{REDACTED} token {REDACTED}"
    )
    assert redact(redact(line)) == redact(line)
    assert redact("Bearer abc, then text") == f"Bearer {REDACTED}, then text"
    assert redact("< BINARY 82 a4 74 79 [33 bytes]") == "< BINARY (payload not logged) [33 bytes]"
    assert redact("> TEXT 'hello' [5 bytes]") == "> TEXT (payload not logged) [5 bytes]"
    kept = "session opened (key 1a2b3c4d); cancelled at sample 4800: heard up to character 12"
    assert redact(kept) == kept


def test_a_record_is_redacted_when_it_is_made(caplog: pytest.LogCaptureFixture) -> None:
    from gateway.server.logs import add_secret, install_redaction

    install_redaction()
    add_secret("k-made-0123456789abcdef")
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("gateway.test")
    log.info("header %s: %s", "Authorization", "k-made-0123456789abcdef")
    log.debug("access %s", "/v1/stream?token=tgw1.0a1b2c3d.1.sig")
    try:
        raise ValueError("refused k-made-0123456789abcdef")
    except ValueError:
        log.exception("failed")
    text = caplog.text
    assert "k-made-0123456789abcdef" not in text
    assert "tgw1.0a1b2c3d" not in text
    assert f"access /v1/stream?token={REDACTED}" in text
    assert f"refused {REDACTED}" in text  # the traceback too
