"""Run the gateway under uvicorn with the configured limits and a graceful shutdown."""

from __future__ import annotations

import logging
import socket

import uvicorn

from gateway.config import Config
from gateway.server.app import Gateway, create_app

__all__ = ["GatewayServer", "run_server", "uvicorn_config"]


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


def uvicorn_config(config: Config) -> uvicorn.Config:
    """The uvicorn settings for ``config``: WebSocket limits, keepalive, graceful shutdown."""
    limits = config.limits
    return uvicorn.Config(
        create_app(config),
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
