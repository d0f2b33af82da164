"""Three gateway replicas behind HAProxy (deploy/haproxy.cfg) sharing one Redis, all real
processes on loopback (tests/cluster.py): tokens valid on every replica, a per-key cap held
across replicas, a replica over its load threshold given no new sessions, and SIGTERM during
sessions losing no accepted character."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import msgpack
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.core.errors import OVER_CAPACITY_CLOSE
from tests.cluster import Cluster, cluster
from tests.conftest import timeout

API_KEY: Final = "cluster-test-key-0123456789"
SECURED: Final = {
    "TTSGW_AUTH__REQUIRED": "yes",
    "TTSGW_AUTH__API_KEYS": f'["{API_KEY}"]',
    "TTSGW_AUTH__TOKEN_SECRETS": '["' + "s" * 40 + '"]',
    "TTSGW_SERVER__LOG_LEVEL": "info",
}


@contextlib.asynccontextmanager
async def session(url: str, secret: str | None = None) -> AsyncIterator[ClientConnection]:
    """An open ``/v1/stream`` socket that got ``ready`` (credential in the subprotocol)."""
    protocols = ["tts-gateway"] + ([f"bearer.{secret}"] if secret else [])
    async with ws_connect(url, subprotocols=protocols, compression=None) as ws:  # type: ignore[list-item]
        await ws.send(msgpack.packb({"type": "start"}))
        async with asyncio.timeout(timeout(30)):
            ready = msgpack.unpackb(await ws.recv())
        assert ready["type"] == "ready", ready
        yield ws


@dataclass
class Heard:
    """What one session was told: messages in order, and how its socket closed."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]


async def listen(ws: ClientConnection, deadline_s: float = 120) -> Heard:
    """Every message until the socket closes."""
    heard = Heard()
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(timeout(deadline_s)):
            async for frame in ws:
                heard.messages.append(msgpack.unpackb(frame))
    heard.close_code = ws.close_code
    return heard


async def token_from(base_url: str, **body: object) -> str:
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{base_url}/v1/tokens", json=body or None,
                                 headers={"Authorization": f"Bearer {API_KEY}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Cluster]:
    env = {**SECURED, "TTSGW_LIMITS__MAX_SESSIONS_PER_KEY": "3"}
    async with cluster(tmp_path, replicas=3, env=env) as running:
        yield running


async def test_a_token_issued_by_one_replica_opens_sessions_on_every_other(
    secured: Cluster,
) -> None:
    first, *others = secured.replicas
    token = await token_from(first.http_url)
    for other in others:
        async with session(other.ws_url, token) as ws:
            await ws.send(msgpack.packb({"type": "text", "text": "Hello there."}))
            await ws.send(msgpack.packb({"type": "end"}))
            heard = await listen(ws)
        assert heard.of("done"), heard.messages
    async with session(secured.balancer.ws_url, token):
        pass
    # A token bound to another page's Origin, or to REST alone, does not open a WebSocket.
    rest_only = await token_from(first.http_url, scopes=["rest"])
    with pytest.raises(InvalidStatus) as refused:
        async with session(others[0].ws_url, rest_only):
            pass
    assert refused.value.response.status_code == 401


async def test_the_per_key_cap_holds_across_replicas(secured: Cluster) -> None:
    token = await token_from(secured.balancer.http_url)
    async with contextlib.AsyncExitStack() as open_sessions:
        for replica in secured.replicas:  # one session on each: 3, the key's cap
            await open_sessions.enter_async_context(session(replica.ws_url, token))
        for replica in secured.replicas:
            with pytest.raises(InvalidStatus) as refused:
                async with session(replica.ws_url, token):
                    pass
            assert refused.value.response.status_code == 429
            assert b"too_many_sessions" in refused.value.response.body  # type: ignore[operator]
    # Closed sessions free their slots everywhere.
    async with asyncio.timeout(timeout(10)):
        while True:
            with contextlib.suppress(InvalidStatus):
                async with session(secured.replicas[2].ws_url, token):
                    break
            await asyncio.sleep(0.1)
