"""The gateway as a process: SIGTERM, and a client that never reads.

These run ``python -m gateway serve`` in a subprocess with the repository's config.toml (the
real Kokoro backend), as a user would.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgpack
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.core.protocol import Audio, Error, decode_server_message
from tests.conftest import REPO, timeout

pytestmark = pytest.mark.model


@dataclass
class Process:
    process: asyncio.subprocess.Process
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")  # pragma: no cover


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def gateway_process(
    *, config: Path = REPO / "config.toml", **env: str
) -> AsyncIterator[Process]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--config", str(config),
        "--port", str(port), cwd=REPO, env={"TTSGW_SERVER__LOG_LEVEL": "warning", **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(timeout(120)):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    health = await http.get(f"http://127.0.0.1:{port}/healthz")
                    if health.status_code == 200:
                        break
                assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
                await asyncio.sleep(0.2)
        yield Process(process, port)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_sigterm_finishes_the_segment_closes_with_1001_and_exits_0() -> None:
    async with gateway_process() as server:
        async with ws_connect(server.ws_url, compression=None) as client:
            await client.send(msgpack.packb({"type": "start"}))
            text = "This first sentence is being spoken. " + "More text waits its turn. " * 20
            await client.send(msgpack.packb({"type": "text", "text": text}))
            async with asyncio.timeout(timeout(60)):
                while not isinstance(decode_server_message(await client.recv()), Audio):  # type: ignore[arg-type]
                    pass
            server.process.send_signal(signal.SIGTERM)
            messages = []
            with contextlib.suppress(ConnectionClosed):
                async with asyncio.timeout(timeout(30)):
                    while True:
                        messages.append(decode_server_message(await client.recv()))  # type: ignore[arg-type]
            assert client.close_code == 1001
        kinds = [m.TYPE for m in messages]
        assert "segment_end" in kinds  # the segment being spoken was finished
        report = messages[-1]
        assert isinstance(report, Error)
        assert (report.code, report.fatal) == ("shutting_down", True)
        assert report.char_end == len(text)  # what will not be spoken is reported
        assert report.char_start is not None
        assert 0 < report.char_start < len(text)
        with pytest.raises((InvalidStatus, OSError)):  # no new sessions now
            async with ws_connect(server.ws_url, open_timeout=2):
                pass
        async with asyncio.timeout(timeout(30)):
            assert await server.process.wait() == 0


async def test_a_client_that_never_reads_does_not_grow_the_servers_memory() -> None:
    # Adaptive chunking off: joined segments would make ONNX Runtime's arena grow to the
    # largest call, which says nothing about clients that do not read.
    async with gateway_process(
        TTSGW_LIMITS__SLOW_CLIENT_GRACE_S="600", TTSGW_SESSION__ADAPTIVE_CHUNKING="false"
    ) as server:
        async with ws_connect(server.ws_url, compression=None, max_queue=1) as client:
            await client.send(msgpack.packb({"type": "start"}))
            sentence = "The listener has stopped reading, yet the text keeps coming. "
            await client.send(msgpack.packb({"type": "text", "text": sentence * 400}))
            await asyncio.sleep(12)  # well past max_buffer_ahead_s: pacing holds the session
            before = server.rss_kib()
            await asyncio.sleep(20)
            after = server.rss_kib()
        growth_mib = (after - before) / 1024
        assert growth_mib < 4, f"RSS grew {growth_mib:.1f} MiB while the client did not read"
