"""The parts replicas share or report, one at a time: signed tokens and their rotation, per-key
limits in memory and in a real redis-server (fail closed when it is away), the over-capacity
refusal after an ``auth`` message (close 4503), and ``GET /metrics``."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import httpx
import msgpack
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from gateway.backends.espeak import EspeakBackend
from gateway.config import AuthRequired, AuthSettings, ClusterSettings, LimitsSettings
from gateway.core.admission import ModelLoad
from gateway.core.errors import OVER_CAPACITY_CLOSE, ErrorCode
from gateway.server.auth import Authenticator
from gateway.server.limits import MemoryLimits, RedisLimits
from gateway.server.tokens import TokenSigner
from tests.cluster import RedisServer, redis_server
from tests.conftest import RunningServer, repo_config, serve, timeout
from tests.servers import unused_port

KEY: Final = "scaling-test-key-0123456789"
OLD, NEW = "o" * 32, "n" * 32


def test_a_rotated_secret_keeps_verifying_until_it_is_dropped() -> None:
    now = [1_000_000.0]
    before = TokenSigner([OLD], clock=lambda: now[0])
    token = before.issue("abcd1234", 60)
    rotated = TokenSigner([NEW, OLD], clock=lambda: now[0])
    claims = rotated.verify(token)
    assert claims is not None
    assert claims.key_id == "abcd1234"
    assert before.verify(rotated.issue("abcd1234", 60)) is None  # signed by the new secret
    assert TokenSigner([NEW], clock=lambda: now[0]).verify(token) is None  # old one dropped
    now[0] += 61
    assert rotated.verify(token) is None  # expired
    head, secret, claims_part, signature = token.split(".")
    forged = claims_part[:-2] + ("A" if claims_part[-2] != "A" else "B") + claims_part[-1]
    assert rotated.verify(f"{head}.{secret}.{forged}.{signature}") is None


def test_a_token_holds_only_its_scopes_and_origin() -> None:
    config = repo_config(auth=AuthSettings(api_keys=(KEY,), token_secrets=(OLD,)))
    auth = Authenticator(config)
    key_id = auth.identify(KEY)
    assert key_id is not None
    token, _ = auth.issue_token(key_id, scopes={"stream"}, origin="https://app.example")
    assert auth.identify(token, origin="https://app.example", scope="stream") == key_id
    assert auth.identify(token, origin="https://evil.example", scope="stream") is None
    assert auth.identify(token, origin=None, scope="stream") is None
    assert auth.identify(token, origin="https://app.example", scope="rest") is None
    # Another process with the same secrets accepts it; one with other secrets does not.
    assert Authenticator(config).identify(token, origin="https://app.example") == key_id
    other = repo_config(auth=AuthSettings(api_keys=(KEY,), token_secrets=(NEW,)))
    assert Authenticator(other).identify(token, origin="https://app.example") is None


async def test_memory_limits_cap_and_rate() -> None:
    now = [0.0]
    limits = MemoryLimits(2, 60.0, 3, clock=lambda: now[0])  # 1 a second, burst 3
    a, b, c, d = object(), object(), object(), object()
    assert await limits.acquire("k", a) is None
    assert await limits.acquire("k", b) is None
    capped = await limits.acquire("k", c)
    assert capped is not None
    assert capped.code is ErrorCode.TOO_MANY_SESSIONS
    limits.release(a)
    assert await limits.acquire("k", c) is None  # the third of the burst
    limits.release(b)
    rated = await limits.acquire("k", d)
    assert rated is not None
    assert (rated.status, rated.code) == (429, ErrorCode.RATE_LIMITED)
    now[0] += 1.0
    assert await limits.acquire("k", d) is None


def _cluster_config(url: str, *, lease_s: float = 15.0, cap: int = 2) -> object:
    return repo_config(
        cluster=ClusterSettings(redis_url=url, lease_s=lease_s, redis_timeout_s=0.5),
        limits=dataclasses.replace(LimitsSettings(), max_sessions_per_key=cap),
    )


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with redis_server(tmp_path) as running:
        yield running


async def test_redis_limits_count_every_replica_and_free_a_dead_ones_slots(
    redis: RedisServer,
) -> None:
    first = RedisLimits(_cluster_config(redis.url, lease_s=1.0))  # type: ignore[arg-type]
    second = RedisLimits(_cluster_config(redis.url, lease_s=1.0))  # type: ignore[arg-type]
    await first.start()
    await second.start()
    try:
        held = object()
        assert await first.acquire("k", held) is None
        assert await second.acquire("k", object()) is None
        refused = await first.acquire("k", object())
        assert refused is not None
        assert refused.code is ErrorCode.TOO_MANY_SESSIONS
        first.release(held)
        async with asyncio.timeout(timeout(5)):  # released in the background
            while await second.count("k") != 1:  # noqa: ASYNC110 - Redis' state
                await asyncio.sleep(0.02)
        # A replica that dies renews nothing: its leases expire within lease_s.
        assert second._task is not None
        second._task.cancel()
        await asyncio.sleep(1.5)  # beyond the 1 s lease
        assert await first.count("k") == 0
        assert await first.acquire("k", object()) is None
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_away_fails_closed_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = RedisLimits(_cluster_config(f"redis://127.0.0.1:{unused_port()}/0"))  # type: ignore[arg-type]
    caplog.set_level(logging.ERROR, logger="gateway.server.limits")
    try:
        for _ in range(3):
            refused = await limits.acquire("k", object())
            assert refused is not None
            assert (refused.status, refused.code) == (503, ErrorCode.LIMITS_UNAVAILABLE)
        lines = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(lines) == 1
        assert "fail closed" in lines[0].getMessage()
    finally:
        await limits.aclose()


@pytest.fixture
async def espeak_gateway(espeak: EspeakBackend) -> AsyncIterator[RunningServer]:
    config = repo_config(
        # Both pages may use the gateway (auth.allowed_origins): a token bound to one is still
        # refused from the other.
        auth=AuthSettings(
            required=AuthRequired.YES,
            api_keys=(KEY,),
            allowed_origins=("https://app.example", "https://other.example"),
        ),
        limits=dataclasses.replace(LimitsSettings(), max_sessions=4),
        cluster=ClusterSettings(max_load=0.5),
    )
    config = dataclasses.replace(
        config, session=dataclasses.replace(config.session, default_backend="espeak")
    )
    running = await serve(config, {"espeak": espeak})
    yield running
    await running.stop()


async def test_over_capacity_after_an_auth_message_closes_4503_and_metrics_count_it(
    espeak_gateway: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bearer = [Subprotocol("tts-gateway"), Subprotocol(f"bearer.{KEY}")]
    async with ws_connect(espeak_gateway.ws_url, subprotocols=bearer) as one:
        await one.send(msgpack.packb({"type": "start"}))
        await one.send(msgpack.packb({"type": "text", "text": "Hello there."}))
        await one.send(msgpack.packb({"type": "end"}))
        async with asyncio.timeout(timeout(30)):
            kinds = [msgpack.unpackb(frame)["type"] async for frame in one]
        assert kinds[-1] == "done"
    # Upgraded without credentials while the replica had room: it asks for an `auth` message.
    async with ws_connect(espeak_gateway.ws_url, subprotocols=bearer[:1]) as late:
        # Meanwhile its model fills up (injected: espeak alone never loads 2 cores this much).
        crowded = (ModelLoad("espeak", speaking=1, real_time_factor=0.6, lanes=1, busy=1.0,
                             queued=3),)  # fmt: skip
        speech = espeak_gateway.gateway.speech
        monkeypatch.setattr(speech, "model_loads", lambda now: crowded)
        async with httpx.AsyncClient() as http:
            saturated = await http.get(f"{espeak_gateway.http_url}/healthz")
        await late.send(msgpack.packb({"type": "auth", "token": KEY}))
        error = msgpack.unpackb(await late.recv())
        assert (error["code"], error["fatal"]) == ("over_capacity", True)
        with pytest.raises(ConnectionClosed):
            await late.recv()
        assert late.close_code == OVER_CAPACITY_CLOSE
    assert saturated.status_code == 503
    load = saturated.json()["load"]
    assert saturated.json()["status"] == "over_capacity"
    assert (load["queued"], load["would_run_dry"], load["load"]) == (3, True, 1.2)
    monkeypatch.undo()
    async with httpx.AsyncClient() as http:
        health = await http.get(f"{espeak_gateway.http_url}/healthz")
        metrics = await http.get(
            f"{espeak_gateway.http_url}/metrics", headers={"Authorization": f"Bearer {KEY}"}
        )
        denied = await http.get(f"{espeak_gateway.http_url}/metrics")
        spoken = await http.post(
            f"{espeak_gateway.http_url}/v1/audio/speech",
            json={"model": "espeak", "input": "Hello over REST.", "voice": "auto"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        after_rest = await http.get(
            f"{espeak_gateway.http_url}/metrics", headers={"Authorization": f"Bearer {KEY}"}
        )
    assert health.json()["status"] == "ok"
    assert denied.status_code == 401
    assert metrics.status_code == 200
    text = metrics.text
    assert 'tts_sessions_refused_total{code="over_capacity"} 1.0' in text
    assert 'tts_sessions_admitted_total{edge="stream"}' in text
    assert 'tts_time_to_first_audio_seconds_count{backend="espeak"} 1.0' in text
    assert 'tts_model_queue_depth{backend="espeak"}' in text
    assert 'tts_audio_bytes_total{backend="espeak"}' in text
    assert "tts_load " in text
    assert spoken.status_code == 200, spoken.text
    assert 'tts_sessions_admitted_total{edge="rest"} 1.0' in after_rest.text
    assert 'backend=""' not in after_rest.text  # a REST request is labelled by its backend


async def test_a_token_request_names_its_origin_and_scopes_or_gets_400(
    espeak_gateway: RunningServer,
) -> None:
    key = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=espeak_gateway.http_url, headers=key) as http:
        bound = await http.post(
            "/v1/tokens", json={"origin": "https://app.example", "scopes": ["rest"]}
        )
        bad = [
            await http.post("/v1/tokens", json={"scopes": ["admin"]}),
            await http.post("/v1/tokens", json={"scopes": []}),
            await http.post("/v1/tokens", json={"audience": "x"}),
            await http.post("/v1/tokens", content=b"not json"),
            await http.post("/v1/tokens", content=b"{" + b" " * 5000 + b"}"),
        ]
        token = bound.json()["token"]
        with_token = {"Authorization": f"Bearer {token}", "Origin": "https://app.example"}
        voices = await http.get("/v1/audio/voices", headers=with_token)
        elsewhere = await http.get(
            "/v1/audio/voices", headers={**with_token, "Origin": "https://other.example"}
        )
    assert bound.status_code == 200
    assert (bound.json()["origin"], bound.json()["scopes"]) == ("https://app.example", ["rest"])
    assert [r.status_code for r in bad] == [400] * 5
    assert all(r.json()["error"]["code"] == "invalid_field" for r in bad)
    assert voices.status_code == 200
    assert elsewhere.status_code == 401
