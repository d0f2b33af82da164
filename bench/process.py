"""A gateway in a process of its own, on a loopback port, for load and resource figures.

The load generator runs in the benchmark's process and the gateway in another, so the gateway's
memory and CPU time (read from /proc) are its own, and the client does not share its event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from bench.procstat import cpu_seconds, rss_bytes

__all__ = ["GATEWAY_COMMAND", "REPO", "GatewayProcess", "free_port", "gateway_process"]

REPO: Final = Path(__file__).resolve().parent.parent
# The real server on the repository's config.toml (TTSGW_* variables apply); --port is added.
GATEWAY_COMMAND: Final = ("-m", "gateway", "serve", "--config", str(REPO / "config.toml"))
_QUIET: Final = {
    "TTSGW_SERVER__LOG_LEVEL": "warning",
    "TTSGW_LIMITS__MAX_SESSIONS": "1000",
    "TTSGW_LIMITS__MAX_SESSIONS_PER_KEY": "1000",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class GatewayProcess:
    """A running gateway process and where it listens."""

    process: asyncio.subprocess.Process
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        """Its streaming endpoint."""
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def rss_bytes(self) -> int:
        """Its resident memory now."""
        return rss_bytes(self.pid)

    def cpu_seconds(self) -> float:
        """CPU seconds it has used so far (every thread)."""
        return cpu_seconds(self.pid)


async def _wait_healthy(gateway: GatewayProcess, timeout_s: float) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(timeout_s):
        while True:
            if gateway.process.returncode is not None:
                raise RuntimeError(f"the gateway exited with {gateway.process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                health = await http.get(f"http://127.0.0.1:{gateway.port}/healthz")
                if health.status_code == 200:
                    return
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def gateway_process(
    command: Sequence[str] = GATEWAY_COMMAND,
    *,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 300.0,
) -> AsyncIterator[GatewayProcess]:
    """Start ``python <command> --port N`` and yield it once ``/healthz`` answers 200 (every
    backend loaded and warmed up); terminate it on the way out. ``env`` adds TTSGW_* overrides
    to this process's environment (log level warning and generous session limits by default)."""
    port = free_port()
    environment = {**os.environ, **_QUIET, **(env or {})}
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command, "--port", str(port), env=environment, cwd=REPO
    )
    gateway = GatewayProcess(process, port)
    try:
        await _wait_healthy(gateway, ready_timeout_s)
        yield gateway
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
