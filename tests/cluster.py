"""Real cluster parts on loopback for tests: redis-server, gateway replicas (``python -m gateway
serve`` processes) and HAProxy in front of them, with deploy/haproxy.cfg as its configuration.

Every process listens on an ephemeral 127.0.0.1 port, keeps its files (config, log) in the
test's temporary directory, is bounded in start-up time, and is killed when its context ends
(never a system service). Without Debian's ``haproxy`` or ``redis-server`` (``make test`` installs
them as root) the tests that need them are skipped with the missing package named.

Typical use::

    async with cluster(tmp_path, replicas=3, env=SECURED) as c:
        ws = await websockets.connect(c.balancer.ws_url, ...)
        c.replicas[0].terminate()          # SIGTERM one replica
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.conftest import REPO, timeout
from tests.servers import unused_port

__all__ = [
    "ESPEAK_CONFIG",
    "Balancer",
    "Cluster",
    "Listening",
    "RedisServer",
    "Replica",
    "balancer",
    "cluster",
    "redis_server",
    "replica",
    "require",
]

HAPROXY_CONFIG: Final = REPO / "deploy" / "haproxy.cfg"
_START_S: Final = 60.0  # one process's start-up deadline (before scaling)

# A replica that speaks with espeak-ng alone: cheap to start three of on 2 cores.
ESPEAK_CONFIG: Final = """\
[server]
log_level = "info"
shutdown_timeout_s = 10.0

[session]
default_backend = "espeak"

[backends.espeak]
kind = "espeak"
"""


def require(program: str, package: str) -> str:
    """The path of ``program``, or skip the test naming the Debian ``package`` it needs."""
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")
    if path is None:
        pytest.skip(f"needs Debian's {package} (make system-packages installs it as root)")
    return path


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


# -- Redis -------------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server on ``127.0.0.1:{port}`` (no persistence)."""

    process: asyncio.subprocess.Process
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextlib.asynccontextmanager
async def redis_server(tmp: Path) -> AsyncIterator[RedisServer]:
    """A fresh redis-server, ready for commands."""
    program = require("redis-server", "redis-server")
    port = unused_port()
    process = await asyncio.create_subprocess_exec(
        program, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(tmp), "--logfile", str(tmp / "redis.log"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout(_START_S)):
            while True:
                with contextlib.suppress(OSError):
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(b"PING\r\n")
                    answer = await reader.readline()
                    writer.close()
                    if answer.startswith(b"+PONG"):
                        break
                assert process.returncode is None, "redis-server stopped during start-up"
                await asyncio.sleep(0.05)
        yield RedisServer(process, port)
    finally:
        await _stop(process)


# -- gateway replicas --------------------------------------------------------------------------


@dataclass
class Listening:
    """A process serving HTTP and ``/v1/stream`` on ``127.0.0.1:{port}``; its log is
    ``log_path``."""

    process: asyncio.subprocess.Process
    port: int
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Replica(Listening):
    """One ``python -m gateway serve`` process."""

    name: str

    def terminate(self) -> None:
        """SIGTERM: the graceful shutdown (drain) starts."""
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the replica dies mid-work."""
        self.process.kill()

    async def wait(self, deadline_s: float = 60.0) -> int:
        """Its exit status, once it exited."""
        async with asyncio.timeout(timeout(deadline_s)):
            return await self.process.wait()


@contextlib.asynccontextmanager
async def replica(
    tmp: Path,
    name: str,
    *,
    config: str = ESPEAK_CONFIG,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Replica]:
    """A gateway process with ``config`` (TOML text) and ``env`` overrides (``TTSGW_...``),
    returned once its ``/healthz`` answers 200."""
    config_path = tmp / f"{name}.toml"
    config_path.write_text(config)
    log_path = tmp / f"{name}.log"
    port = unused_port()
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--config", str(config_path),
            "--port", str(port), cwd=REPO, env={"PATH": os.environ.get("PATH", ""), **(env or {})},
            stdout=log_file, stderr=log_file,
        )  # fmt: skip
    running = Replica(process, port, log_path, name)
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(timeout(_START_S)):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{running.http_url}/healthz")).status_code == 200:
                        break
                assert process.returncode is None, f"{name} stopped:\n{running.log()}"
                await asyncio.sleep(0.1)
        yield running
    finally:
        await _stop(process)


# -- HAProxy -----------------------------------------------------------------------------------


def haproxy_config(port: int, replicas: Sequence[Replica], stats_socket: Path) -> str:
    """deploy/haproxy.cfg for loopback: its ``bind`` on ``port``, one ``server`` per replica
    (the backend section is the file's last), a 100 ms check interval and a stats socket."""
    text = HAPROXY_CONFIG.read_text()
    text = re.sub(r"(?m)^(\s*)bind .*$", rf"\1bind 127.0.0.1:{port}", text)
    text = re.sub(r"(?m)^\s*server .*\n?", "", text)
    text = re.sub(r"(?m)\binter \S+", "inter 100ms", text)
    socket = f"    stats socket {stats_socket} mode 600 level admin"
    text = re.sub(r"(?m)^global$", f"global\n{socket}", text, count=1)
    servers = "".join(f"    server {r.name} 127.0.0.1:{r.port}\n" for r in replicas)
    return text.rstrip("\n") + "\n" + servers


@dataclass
class Balancer(Listening):
    """HAProxy in front of the replicas, with its stats socket."""

    stats_socket: Path

    async def command(self, line: str) -> str:
        """One command on HAProxy's stats socket, and its answer."""
        reader, writer = await asyncio.open_unix_connection(str(self.stats_socket))
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode()
        finally:
            writer.close()

    async def server_states(self) -> dict[str, str]:
        """Each replica's state as the balancer sees it (``UP``, ``DOWN``, ...)."""
        rows = csv.DictReader(io.StringIO((await self.command("show stat")).lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == "gateways" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    async def wait_for(self, name: str, state: str, deadline_s: float = 20.0) -> None:
        """Wait until the balancer sees replica ``name`` in ``state`` (e.g. after checks)."""
        async with asyncio.timeout(timeout(deadline_s)):
            while (await self.server_states()).get(name, "").split(" ")[0] != state:  # noqa: ASYNC110 - HAProxy's state
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def balancer(tmp: Path, replicas: Sequence[Replica]) -> AsyncIterator[Balancer]:
    """HAProxy with deploy/haproxy.cfg in front of ``replicas``, once it sees them all UP."""
    program = require("haproxy", "haproxy")
    port = unused_port()
    stats_socket = tmp / "haproxy.sock"
    config_path = tmp / "haproxy.cfg"
    config_path.write_text(haproxy_config(port, replicas, stats_socket))
    log_path = tmp / "haproxy.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            program, "-db", "-f", str(config_path), stdout=log_file, stderr=log_file
        )
    running = Balancer(process, port, log_path, stats_socket)
    try:
        async with asyncio.timeout(timeout(_START_S)):
            while not stats_socket.exists():
                assert process.returncode is None, f"haproxy stopped:\n{running.log()}"
                await asyncio.sleep(0.05)
        for r in replicas:
            await running.wait_for(r.name, "UP")
        yield running
    finally:
        await _stop(process)


# -- all together ------------------------------------------------------------------------------


@dataclass
class Cluster:
    """Redis, the replicas (``gw1``...) and HAProxy in front of them."""

    redis: RedisServer
    replicas: list[Replica]
    balancer: Balancer
    env: dict[str, str] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def cluster(
    tmp: Path,
    *,
    replicas: int = 3,
    config: str = ESPEAK_CONFIG,
    env: Mapping[str, str] | None = None,
    replica_env: Sequence[Mapping[str, str]] = (),
) -> AsyncIterator[Cluster]:
    """``replicas`` gateways sharing one Redis (``cluster.redis_url``) behind HAProxy. ``env``
    applies to every replica, ``replica_env[i]`` to replica ``i`` on top of it."""
    assert 1 <= replicas <= 4, "keep the process count small: the machine is shared"
    async with redis_server(tmp) as redis, contextlib.AsyncExitStack() as stack:
        shared = {"TTSGW_CLUSTER__REDIS_URL": redis.url, **(env or {})}
        started = []
        for i in range(replicas):
            own = replica_env[i] if i < len(replica_env) else {}
            started.append(
                await stack.enter_async_context(
                    replica(tmp, f"gw{i + 1}", config=config, env={**shared, **own})
                )
            )
        front = await stack.enter_async_context(balancer(tmp, started))
        yield Cluster(redis, started, front, shared)
