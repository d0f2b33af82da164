"""The HTTP side of the gateway against hostile and careless clients (issue 19, items 4-6):
slow-loris connections, the connection cap, request bodies that never come, browsers (Host and
Origin), the `server` banner, and how `serve` refuses an open gateway."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import sys
from typing import Any

import httpx
import msgpack
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from gateway.config import (
    AuthRequired,
    AuthSettings,
    ConfigError,
    LimitsSettings,
    ServerSettings,
    load_config,
    with_server,
)
from gateway.server.auth import host_name, served_hosts
from gateway.server.gateway import Gateway
from tests.conftest import REPO, repo_config, timeout, tone_gateway
from tests.fakes import ToneBackend
from tests.rawsocket import open_socket, read_head


def server_settings(**changes: Any) -> ServerSettings:
    return dataclasses.replace(repo_config().server, **changes)


async def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    loop = asyncio.get_running_loop()
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await loop.sock_recv(sock, 4096):
            received += chunk
    return received


# -- slow loris and the connection cap -----------------------------------------------------------


async def test_slow_request_heads_are_closed_and_connections_capped() -> None:
    server = server_settings(header_timeout_s=1.0, max_connections=10)
    limits = dataclasses.replace(LimitsSettings(), max_sessions=4)
    auth = AuthSettings(max_unauthenticated=2)
    async with tone_gateway(server=server, limits=limits, auth=auth) as running:
        loop = asyncio.get_running_loop()
        socks = [await open_socket(running.port) for _ in range(14)]
        try:
            for sock in socks:  # a head that never ends, one byte at a time
                await loop.sock_sendall(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")

            async def trickle(sock: socket.socket) -> bytes:
                with contextlib.suppress(OSError):
                    for _ in range(100):
                        await loop.sock_sendall(sock, b"a")
                        await asyncio.sleep(0.2)
                return await closed_by_server(sock)

            async with asyncio.timeout(timeout(15)):
                answers = await asyncio.gather(*(trickle(sock) for sock in socks))
        finally:
            for sock in socks:
                sock.close()
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        timed_out = [a for a in answers if a.startswith(b"HTTP/1.1 408")]
        assert len(refused) >= 4  # over the cap at once
        assert len(refused) + len(timed_out) == 14
        assert b"too_many_connections" in refused[0]
        # Once they are gone, a client gets in.
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{running.http_url}/healthz")).status_code == 200


async def test_a_request_body_that_never_comes_is_408() -> None:
    async with tone_gateway(server=server_settings(read_timeout_s=1.0)) as running:
        sock = await open_socket(running.port)
        try:
            head = (
                b"POST /v1/estimate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"input": '
            )
            await asyncio.get_running_loop().sock_sendall(sock, head)
            async with asyncio.timeout(timeout(10)):
                answer = await read_head(sock)
        finally:
            sock.close()
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"request_timeout" in answer


# -- browsers: Host, Origin, content type -------------------------------------------------------


async def test_loopback_is_not_a_boundary_for_browsers() -> None:
    async with tone_gateway() as running, httpx.AsyncClient(base_url=running.http_url) as http:
        own = f"http://127.0.0.1:{running.port}"
        speech = {"input": "Hello.", "response_format": "pcm"}
        # A page elsewhere can neither post speech nor open a session, even on loopback...
        posted = await http.post("/v1/audio/speech", json=speech,
                                 headers={"Origin": "https://evil.example"})  # fmt: skip
        assert posted.status_code == 403
        assert posted.json()["error"]["code"] == "forbidden"
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(running.ws_url, origin="https://evil.example"):  # type: ignore[arg-type]
                pass  # pragma: no cover
        assert refused.value.response.status_code == 403
        # ...nor send a "simple" text/plain request, which needs no preflight.
        plain = await http.post("/v1/audio/speech", content=b'{"input": "Hello."}',
                                headers={"Content-Type": "text/plain"})  # fmt: skip
        assert plain.status_code == 415
        assert plain.json()["error"]["code"] == "unsupported_media_type"
        # A rebound name (DNS rebinding) is not this gateway.
        rebound = await http.get("/healthz", headers={"Host": f"evil.example:{running.port}"})
        assert rebound.status_code == 400
        assert rebound.json()["error"]["code"] == "invalid_host"
        # The gateway's own pages (the demo) may do everything.
        ok = await http.post("/v1/audio/speech", json=speech, headers={"Origin": own})
        assert ok.status_code == 200
        async with ws_connect(running.ws_url, origin=own, compression=None) as socket:  # type: ignore[arg-type]
            await socket.send(msgpack.packb({"type": "start"}))
            assert msgpack.unpackb(await socket.recv())["type"] == "ready"


async def test_a_dev_page_elsewhere_is_one_setting_away() -> None:
    auth = AuthSettings(allowed_origins=("http://localhost:5173",))
    async with tone_gateway(auth=auth) as running:
        async with ws_connect(running.ws_url, origin="http://localhost:5173",  # type: ignore[arg-type]
                              compression=None):  # fmt: skip
            pass
        with pytest.raises(InvalidStatus):
            async with ws_connect(running.ws_url, origin="http://localhost:3000"):  # type: ignore[arg-type]
                pass  # pragma: no cover


def test_the_names_a_gateway_answers_to() -> None:
    assert served_hosts(ServerSettings()) == frozenset({"localhost", "127.0.0.1", "::1"})
    assert served_hosts(ServerSettings(host="0.0.0.0")) is None  # names unknown: any
    assert served_hosts(ServerSettings(host="10.0.0.5")) == frozenset({"10.0.0.5"})
    named = ServerSettings(host="0.0.0.0", allowed_hosts=("TTS.example",))
    assert served_hosts(named) == frozenset({"tts.example"})
    assert served_hosts(ServerSettings(allowed_hosts=("*",))) is None
    assert [host_name(h) for h in ("LocalHost:8765", "[::1]:8765", "::1", "a.example.")] == [
        "localhost", "::1", "::1", "a.example",
    ]  # fmt: skip


# -- banner, serve, warnings ---------------------------------------------------------------------


async def test_no_server_banner() -> None:
    async with tone_gateway() as running, httpx.AsyncClient() as http:
        response = await http.get(f"{running.http_url}/healthz")
    assert "server" not in response.headers


async def test_serve_on_a_public_address_without_keys_says_why_without_a_traceback() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--config", str(REPO / "config.toml"),
        "--host", "0.0.0.0", "--port", "0", cwd=REPO, env={"TTSGW_AUTH__API_KEYS": "[]"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(timeout(60)):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert "configuration error: auth.api_keys" in err.decode()
    assert "Traceback" not in err.decode()


def test_command_line_overrides_are_checked_like_the_file() -> None:
    config = load_config(REPO / "config.toml", environ={})
    with pytest.raises(ConfigError, match=r"server\.port"):
        with_server(config, port=70000)
    with pytest.raises(ConfigError, match=r"auth\.api_keys"):
        with_server(config, host="0.0.0.0")


async def test_an_open_gateway_off_loopback_says_so(caplog: pytest.LogCaptureFixture) -> None:
    config = repo_config(auth=AuthSettings(required=AuthRequired.NO))
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, host="0.0.0.0"))
    gateway = Gateway(config, {"kokoro": ToneBackend("kokoro")}, owns_backends=False)
    caplog.set_level(logging.WARNING)
    await gateway.start()
    await gateway.stop()
    assert any("without authentication" in r.getMessage() for r in caplog.records)
