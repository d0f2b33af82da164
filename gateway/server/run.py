"""Run the gateway under uvicorn with the configured limits and a graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import uvicorn

from gateway.backends import Backend
from gateway.config import Config
from gateway.server.app import Gateway, create_app

__all__ = [
    "BackgroundServer",
    "GatewayServer",
    "gateway_server",
    "run_server",
    "serve_in_background",
    "uvicorn_config",
]


class GatewayServer(uvicorn.Server):
    """uvicorn's server, but sessions are closed by the gateway (1001) before uvicorn's own
    shutdown would close them with 1012."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting first
        await self.gateway.close_sessions()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT start a graceful shutdown; once it is done the process exits with 0
        (uvicorn would raise the signal again, ending the process by the signal)."""
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


def uvicorn_config(
    config: Config, *, backends: Mapping[str, Backend] | None = None
) -> uvicorn.Config:
    """The uvicorn settings for ``config``: WebSocket limits, keepalive, graceful shutdown."""
    limits = config.limits
    return uvicorn.Config(
        create_app(config, backends=backends),
        host=config.server.host,
        port=config.server.port,
        ws="websockets-sansio",
        ws_max_size=limits.max_message_bytes,
        ws_ping_interval=limits.ping_interval_s,
        ws_ping_timeout=limits.ping_timeout_s,
        ws_per_message_deflate=False,
        lifespan="on",
        log_level=config.server.log_level,
        timeout_graceful_shutdown=int(config.server.shutdown_timeout_s),
    )


def gateway_server(settings: uvicorn.Config) -> GatewayServer:
    """A server for an app made by :func:`gateway.server.app.create_app`."""
    return GatewayServer(settings, settings.app.state.gateway)  # type: ignore[union-attr]


@dataclass
class BackgroundServer:
    """A gateway served on the running event loop (tests, benchmarks, embedding)."""

    server: GatewayServer
    task: asyncio.Task[None]
    port: int

    @property
    def gateway(self) -> Gateway:
        return self.server.gateway

    async def stop(self) -> None:
        """Shut down as on SIGTERM and wait for it."""
        self.server.should_exit = True
        await self.task


async def serve_in_background(
    config: Config, *, backends: Mapping[str, Backend] | None = None, wait_ready: bool = True
) -> BackgroundServer:
    """Start a gateway on the running loop and return once it listens (port 0 picks one) and,
    with ``wait_ready``, once its backends have loaded (or failed to)."""
    settings = uvicorn_config(config, backends=backends)
    server = gateway_server(settings)
    task = asyncio.create_task(server.serve(), name="gateway-server")
    while not server.started:
        if task.done():
            task.result()  # start-up failed: raise its error
            raise RuntimeError("the gateway stopped during start-up")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    if wait_ready:
        await server.gateway.loaded()
    return BackgroundServer(server, task, port)


def run_server(config: Config) -> None:
    """Serve until interrupted (SIGINT/SIGTERM)."""
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger(__name__).info(
        "tts-gateway on ws://%s:%d/v1/stream (config: %s)",
        config.server.host,
        config.server.port,
        config.source,
    )
    gateway_server(uvicorn_config(config)).run()
