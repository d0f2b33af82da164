"""The browser policy at the door: an ASGI middleware in front of every route (HTTP and the
WebSocket upgrade) that refuses a request whose ``Host`` does not name the gateway (400
``invalid_host``: DNS rebinding) or that comes from a browser page of an Origin not allowed (403
``forbidden``), as :class:`~gateway.server.auth.Authenticator` decides.

Refusals are JSON, ``{"error": {"code", "message"}}``, in OpenAI's error shape on the REST API's
routes; a WebSocket is refused before the upgrade with the same body.
"""

from __future__ import annotations

import logging
from typing import Final

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from gateway.server.auth import Authenticator
from gateway.server.rest_params import RestError

__all__ = ["Guard", "deny", "error_response"]

log = logging.getLogger(__name__)

# Routes that answer in OpenAI's error shape (docs/rest.md).
_REST_PREFIXES: Final = ("/v1/audio/", "/v1/estimate")


class Guard:
    """Host and Origin checks before the application (see the module)."""

    def __init__(self, app: ASGIApp, *, auth: Authenticator) -> None:
        self._app = app
        self._auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host, origin = headers.get("host"), headers.get("origin")
        if not self._auth.host_allowed(host):
            reason = f"this gateway does not answer to the host {host!r} (server.allowed_hosts)"
            refusal = (400, "invalid_host", reason)
        elif not self._auth.origin_allowed(origin, host):
            reason = f"pages from {origin!r} may not use this gateway (auth.allowed_origins)"
            refusal = (403, "forbidden", reason)
        else:
            await self._app(scope, receive, send)
            return
        status, code, message = refusal
        if scope["type"] == "websocket":
            await deny(WebSocket(scope, receive, send), status, code, message)
            return
        log.info("refused a request: %s %s", status, message)
        if scope["path"].startswith(_REST_PREFIXES):
            response = RestError(status, message, code=code).response()
        else:
            response = error_response(status, code, message)
        await response(scope, receive, send)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """The gateway's JSON error body, ``{"error": {"code", "message"}}``."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def deny(websocket: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse a WebSocket before the upgrade, with an HTTP status and a JSON reason."""
    log.info("refused a session: %s %s", status, message)
    await websocket.send_denial_response(error_response(status, code, message))
