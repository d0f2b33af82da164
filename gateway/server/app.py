"""The Starlette application: health, voices, tokens, the streaming WebSocket, the REST API and
the demo page, over one :class:`~gateway.server.gateway.Gateway` (the backends, shared by every
session, and the live sessions).
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from gateway.backends import Backend, create_backend
from gateway.config import Config
from gateway.server.auth import SUBPROTOCOL, credentials
from gateway.server.cors import cors_middleware
from gateway.server.elevenlabs_routes import elevenlabs_routes
from gateway.server.gateway import Gateway
from gateway.server.guard import Guard, deny, error_response
from gateway.server.logs import install_redaction
from gateway.server.metrics import CONTENT_TYPE
from gateway.server.rest import rest_routes
from gateway.server.stream import Connection
from gateway.server.tokens import SCOPES

__all__ = ["WEB_CLIENT_DIR", "Gateway", "create_app"]

# The browser client (an ES module) and its demo page, served at /client/ and /. They live in the
# source tree beside the Python packages (clients/js), so a source checkout or an editable install
# serves them; without that directory / answers 404 with a message and /client/ is not mounted.
WEB_CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "js"
# Browsers refuse to run an ES module served with another type; older mime tables lack .mjs.
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/javascript", ".js")
_MAX_TOKEN_REQUEST_BYTES: Final = 4096


def create_app(config: Config, *, backends: Mapping[str, Backend] | None = None) -> Starlette:
    """The gateway application. ``backends`` replaces the configured ones (tests and embedders
    lend theirs: they are not closed when the application stops)."""
    install_redaction()  # before the first line is logged
    lent = backends is not None
    if backends is None:
        backends = {name: create_backend(name, s) for name, s in config.backends.items()}
    gateway = Gateway(config, backends, owns_backends=not lent)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    async def healthz(request: Request) -> JSONResponse:
        states = gateway.status()
        ready = bool(states) and all(state == "ready" for state in states.values())
        load = gateway.load_report()
        if not gateway.accepting:
            status = "draining"
        elif not ready:
            status = "unavailable"
        else:
            status = "over_capacity" if load.over_capacity else "ok"
        stalls = gateway.stalls()
        figures = {"queued": load.queued, "load": load.load, "max_load": load.max_load,
                   "would_run_dry": load.would_run_dry}  # fmt: skip
        body = {"status": status, "backends": states, "saturated": gateway.saturated(),
                "sessions": load.sessions, "speaking": stalls.speaking,
                "stalled": stalls.stalled, "load": figures}  # fmt: skip
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    def unauthorized(request: Request) -> JSONResponse | None:
        if not gateway.auth.required:
            return None
        presented = credentials(request.headers, ()).secret
        if gateway.auth.identify(presented, origin=request.headers.get("origin")) is not None:
            return None
        return error_response(401, "unauthorized", "a valid API key or token is required")

    async def metrics(request: Request) -> Response:
        if (denied := unauthorized(request)) is not None:
            return denied
        return Response(gateway.metrics.exposition(), media_type=CONTENT_TYPE)

    async def voices(request: Request) -> JSONResponse:
        if (denied := unauthorized(request)) is not None:
            return denied
        states = gateway.status()
        ready = {n: b for n, b in gateway.backends.items() if states.get(n) == "ready"}
        listed: list[dict[str, Any]] = [
            {
                "backend": name,
                "id": v.id,
                "name": v.name,
                "language": v.language,
                "gender": v.gender,
                "languages": list(v.languages or backend.languages),
                # ElevenLabs' names, for its clients (LiveKit's list_voices reads these).
                "voice_id": v.id,
                "category": "premade",
                "labels": {"language": v.language, "gender": v.gender},
            }
            for name, backend in ready.items()
            for v in backend.voices()
        ]
        # Each backend's languages once (espeak has 150: not repeated for each of its voices).
        languages = {name: list(backend.languages) for name, backend in ready.items()}
        status = 200 if listed or not states else 503
        body = {"voices": listed, "languages": languages, "backends": states}
        return JSONResponse(body, status_code=status)

    async def tokens(request: Request) -> JSONResponse:
        """A short-lived token for a browser, in exchange for an API key; the optional JSON
        body binds it to a page Origin and to some of the routes (``scopes``)."""
        key_id = gateway.auth.key_id_of_api_key(credentials(request.headers, ()).secret)
        if key_id is None:
            return error_response(401, "unauthorized", "POST /v1/tokens needs a valid API key")
        try:
            origin, scopes = await _token_request(request, gateway)
        except ValueError as error:
            return error_response(400, "invalid_field", str(error))
        token, ttl = gateway.auth.issue_token(key_id, scopes=scopes, origin=origin)
        return JSONResponse({"token": token, "expires_in": ttl, "origin": origin,
                             "scopes": sorted(scopes)})  # fmt: skip

    async def stream(websocket: WebSocket) -> None:
        auth = gateway.auth  # Host and Origin were checked by the Guard
        offered = websocket.scope.get("subprotocols", [])
        presented = credentials(websocket.headers, offered)
        if offered and presented.subprotocol is None:
            # A browser fails a handshake whose subprotocol it did not offer: say why instead.
            reason = f"offer the {SUBPROTOCOL!r} subprotocol among your subprotocols"
            await deny(websocket, 400, "invalid_message", reason)
            return
        origin = websocket.headers.get("origin")
        key_id = auth.identify(presented.secret, origin=origin, scope="stream")
        if presented.secret is not None and key_id is None and auth.required:
            await deny(websocket, 401, "unauthorized", "invalid API key or token")
            return
        waiting = auth.required and key_id is None  # for an `auth` message
        connection = Connection(websocket, gateway, key_id=key_id,
                                subprotocol=presented.subprotocol)  # fmt: skip
        refusal = (gateway.admission_error(waiting=True) if waiting
                   else await gateway.admit(connection, key_id))  # fmt: skip
        if refusal is not None:
            await deny(websocket, refusal.status, refusal.code.value, refusal.reason)
            return
        with gateway.serving(connection, waiting=waiting):
            await connection.run()

    async def demo(request: Request) -> Response:
        page = WEB_CLIENT_DIR / "demo" / "index.html"
        if not page.is_file():
            return PlainTextResponse(
                f"The demo page is served from a source checkout: {page} not found.\n",
                status_code=404,
            )
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    routes: list[BaseRoute] = [
        Route("/", demo),
        Route("/healthz", healthz),
        Route("/v1/voices", voices),
        Route("/v1/tokens", tokens, methods=["POST"]),
        *([Route("/metrics", metrics)] if config.server.metrics else []),
        WebSocketRoute("/v1/stream", stream),
        *rest_routes(gateway),
        *elevenlabs_routes(gateway),
    ]
    if WEB_CLIENT_DIR.is_dir():
        routes.append(Mount("/client", StaticFiles(directory=WEB_CLIENT_DIR)))
    guard = Middleware(Guard, auth=gateway.auth)  # outermost: the policy before CORS answers
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[guard, cors_middleware(config)])
    app.state.gateway = gateway
    return app


async def _token_request(request: Request, gateway: Gateway) -> tuple[str | None, set[str]]:
    """The Origin and scopes a token request asks for (no body: none, every scope);
    ValueError names a bad field."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_TOKEN_REQUEST_BYTES:
            raise ValueError(f"the body is larger than {_MAX_TOKEN_REQUEST_BYTES} bytes")
    if not body.strip():
        return None, set(SCOPES)
    try:
        fields = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(fields, dict) or set(fields) - {"origin", "scopes"}:
        raise ValueError('the body is a JSON object with "origin" and "scopes" (both optional)')
    origin = fields.get("origin")
    if origin is not None and (not isinstance(origin, str) or not origin):
        raise ValueError('origin: must be a page origin such as "https://app.example"')
    if origin is not None and not gateway.auth.origin_allowed(origin):
        raise ValueError(f"origin: {origin!r} is not in auth.allowed_origins")
    scopes = fields.get("scopes", list(SCOPES))
    if (not isinstance(scopes, list) or not scopes
            or not all(isinstance(s, str) and s in SCOPES for s in scopes)):  # fmt: skip
        raise ValueError(f"scopes: a non-empty list of {', '.join(map(repr, SCOPES))}")
    return origin, set(scopes)
