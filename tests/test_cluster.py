"""Three gateway replicas behind HAProxy (deploy/haproxy.cfg) sharing one Redis, all real
processes on loopback (tests/cluster.py): tokens valid on every replica, a per-key cap held
across replicas, a replica over its load threshold given no new sessions, and SIGTERM during
sessions losing no accepted character."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import msgpack
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from tests.cluster import Cluster, Replica, cluster
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
    offered = ["tts-gateway"] + ([f"bearer.{secret}"] if secret else [])
    protocols = [Subprotocol(p) for p in offered]
    async with ws_connect(url, subprotocols=protocols, compression=None) as ws:
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


async def listen(ws: ClientConnection, heard: Heard | None = None) -> Heard:
    """Every message until the socket closes (appended to ``heard``)."""
    heard = heard or Heard()
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(timeout(120)):
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
            assert b"too_many_sessions" in refused.value.response.body
    # Closed sessions free their slots everywhere.
    async with asyncio.timeout(timeout(10)):
        while True:
            with contextlib.suppress(InvalidStatus):
                async with session(secured.replicas[2].ws_url, token):
                    break
            await asyncio.sleep(0.1)


async def health(replica_url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{replica_url}/healthz")
    return answer.status_code, answer.json()


async def test_a_replica_over_its_load_threshold_gets_no_new_sessions(tmp_path: Path) -> None:
    # gw1 refuses at half of its 4 sessions; the others take what the balancer sends them.
    busy = {"TTSGW_LIMITS__MAX_SESSIONS": "4", "TTSGW_CLUSTER__MAX_LOAD": "0.5"}
    async with cluster(tmp_path, replicas=3, replica_env=[busy]) as running:
        gw1 = running.replicas[0]
        async with contextlib.AsyncExitStack() as held:
            for _ in range(2):
                await held.enter_async_context(session(gw1.ws_url))
            status, body = await health(gw1.http_url)
            assert (status, body["status"]) == (503, "over_capacity"), body
            assert body["sessions"] == 2
            assert body["load"]["load"] >= 0.5
            with pytest.raises(InvalidStatus) as refused:
                async with session(gw1.ws_url):
                    pass
            assert refused.value.response.status_code == 503
            assert b"over_capacity" in refused.value.response.body
            await running.balancer.wait_for("gw1", "DOWN")
            for _ in range(6):  # through the balancer: all of them elsewhere
                await held.enter_async_context(session(running.balancer.ws_url))
            assert (await health(gw1.http_url))[1]["sessions"] == 2
            placed = [(await health(r.http_url))[1]["sessions"] for r in running.replicas]
            assert placed[1] + placed[2] == 6, placed
        await running.balancer.wait_for("gw1", "UP")  # its sessions ended: it takes new ones
        assert (await health(gw1.http_url))[1]["status"] == "ok"


STORY: Final = "".join(
    f"Sentence number {n} of the story goes on for a little while. " for n in range(1, 9)
)


def spoken_prefix(heard: Heard) -> int:
    """Where the text spoken to the end (segments started and ended, in order) stops."""
    ended = {m["segment"] for m in heard.of("segment_end")}
    covered = 0
    for start in heard.of("segment_start"):
        if start["segment"] not in ended:
            break
        assert start["char_start"] == covered, "segments are contiguous"
        covered = start["char_end"]
    return covered


async def speak_rest(url: str, text: str) -> Heard:
    async with session(url) as ws:
        await ws.send(msgpack.packb({"type": "text", "text": text}))
        await ws.send(msgpack.packb({"type": "end"}))
        return await listen(ws)


async def stop_gw1_mid_speech(
    running: Cluster, count: int, spoken: str, stop: Callable[[Replica], None]
) -> list[Heard]:
    """Open ``count`` sessions through the balancer speaking :data:`STORY`, wait until each
    got a message of type ``spoken``, ``stop`` replica gw1, and return what each of gw1's
    sessions heard until its socket closed (the others speak on, and are closed)."""
    sockets, prelude = [], []
    async with contextlib.AsyncExitStack() as held:
        for _ in range(count):
            ws = await held.enter_async_context(session(running.balancer.ws_url))
            await ws.send(msgpack.packb({"type": "text", "text": STORY}))
            sockets.append(ws)
            prelude.append(Heard())
        async with asyncio.timeout(timeout(60)):
            for ws, heard in zip(sockets, prelude, strict=True):
                while not heard.of(spoken):
                    heard.messages.append(msgpack.unpackb(await ws.recv()))
        gw1 = running.replicas[0]
        on_gw1 = (await health(gw1.http_url))[1]["sessions"]
        assert on_gw1 >= 1
        listeners = [
            asyncio.create_task(listen(ws, heard))
            for ws, heard in zip(sockets, prelude, strict=True)
        ]
        stop(gw1)
        ended = []
        async with asyncio.timeout(timeout(30)):  # gw1's sessions end with it
            for finished in asyncio.as_completed(listeners):
                ended.append(await finished)
                if len(ended) == on_gw1:
                    break
        assert sum(t.done() for t in listeners) == on_gw1  # the others speak on
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
    return ended


async def test_sigterm_during_20_sessions_loses_no_accepted_character(tmp_path: Path) -> None:
    async with cluster(tmp_path, replicas=3) as running:
        ended = await stop_gw1_mid_speech(running, 20, "audio", Replica.terminate)
        assert await running.replicas[0].wait() == 0
        rests = await asyncio.gather(
            *(
                speak_rest(running.balancer.ws_url, STORY[h.messages[-1]["char_start"] :])
                for h in ended
            )
        )
        for heard, rest in zip(ended, rests, strict=True):
            assert heard.close_code == 1001
            report = heard.messages[-1]
            assert (report["type"], report["code"], report["fatal"]) == (
                "error",
                "shutting_down",
                True,
            )
            # Everything before the reported range was spoken; the range runs to the end.
            assert report["char_start"] == spoken_prefix(heard) > 0
            assert report["char_end"] == len(STORY)
            # What was reported unspoken is spoken through the balancer by another replica.
            assert rest.of("done"), [m["type"] for m in rest.messages]
            assert spoken_prefix(rest) == len(STORY) - report["char_start"]


async def test_kill_9_mid_speech_the_rest_is_spoken_elsewhere_from_the_sentence_in_flight(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, replicas=3) as running:
        # Each waits for a segment_end: one sentence spoken, the next in flight.
        broken = await stop_gw1_mid_speech(running, 6, "segment_end", Replica.kill)
        for heard in broken:
            assert heard.close_code == 1006  # no report: the replica is gone
            assert not heard.of("error")
        # Each client resends from the end of what it was told was spoken: at most the
        # sentence in flight is heard twice, nothing is missed.
        resumes = [spoken_prefix(heard) for heard in broken]
        rests = await asyncio.gather(
            *(speak_rest(running.balancer.ws_url, STORY[start:]) for start in resumes)
        )
        for heard, start, rest in zip(broken, resumes, rests, strict=True):
            in_flight = [m for m in heard.of("segment_start") if m["char_start"] >= start]
            assert len(in_flight) <= 1  # one segment (a sentence) was under way
            assert 0 < start < len(STORY)
            assert rest.of("done"), [m["type"] for m in rest.messages]
            assert spoken_prefix(rest) == len(STORY) - start
