"""Run the gateway under uvicorn with the configured limits and a graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import uvicorn

from gateway.backends import Backend
from gateway.config import Config
from gateway.server.app import Gateway, create_app
from gateway.server.link import LinkSettings
from gateway.server.logs import configure_logging
from gateway.server.protocols import protocol_classes

__all__ = [
    "BackgroundServer",
    "GatewayServer",
    "gateway_server",
    "run_server",
    "serve_in_background",
    "uvicorn_config",
]


# Of server.shutdown_timeout_s: sessions finish their segment in the first half; connections
# still open at this share of it (peers that do not read their last bytes, closes that get
# no answer) are dropped, so the rest is left for the backends to close and the process to exit.
_CONNECTIONS_SHARE = 0.75


class GatewayServer(uvicorn.Server):
    """uvicorn's server, but sessions are closed by the gateway (1001) before uvicorn's own
    shutdown would close them with 1012, and the whole shutdown keeps to
    ``server.shutdown_timeout_s``."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        budget = self.gateway.config.server.shutdown_timeout_s
        started = loop.time()
        share = budget * _CONNECTIONS_SHARE
        for server in self.servers:
            server.close()  # stop accepting first
        # Sessions finish their segment within half the budget; their last sends have deadlines
        # of their own, which dropping the connections (below) cuts short.
        closing = asyncio.ensure_future(self.gateway.close_sessions())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(share):
                await asyncio.shield(closing)
        for connection in list(self.server_state.connections):
            connection.shutdown()
        # uvicorn's set of connections has no event to wait on; it polls them the same way.
        while self.server_state.connections and loop.time() - started < share:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for connection in list(self.server_state.connections):
            connection.transport.abort()  # a peer that does not read cannot hold the exit
        await closing  # its sends fail at once now
        remaining = budget - (loop.time() - started)
        self.config.timeout_graceful_shutdown = max(1, math.ceil(remaining))
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
    """The uvicorn settings for ``config``: the gateway's HTTP and WebSocket protocols (their
    limits: :mod:`gateway.server.protocols`), WebSocket limits, keepalive, graceful shutdown, no
    ``server`` header, and logging left to the process (:func:`configure_logging`)."""
    limits = config.limits
    http, ws = protocol_classes(LinkSettings.from_config(config))
    return uvicorn.Config(
        create_app(config, backends=backends),
        host=config.server.host,
        port=config.server.port,
        http=http,
        ws=ws,
        ws_max_size=limits.max_message_bytes,
        ws_ping_interval=limits.ping_interval_s,
        ws_ping_timeout=limits.ping_timeout_s,
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=None,
        log_level=config.server.log_level,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(config.server.shutdown_timeout_s),
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
    configure_logging(config.server.log_level)
    logging.getLogger(__name__).info(
        "tts-gateway on ws://%s:%d/v1/stream (config: %s)",
        config.server.host,
        config.server.port,
        config.source,
    )
    gateway_server(uvicorn_config(config)).run()
