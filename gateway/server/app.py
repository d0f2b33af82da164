"""The Starlette application: health, voices, the streaming WebSocket and the demo page.

The :class:`Gateway` owns the backends (one instance of each per process, shared by every
session), loads and warms them up in the background after start-up, and tracks the live
connections so that shutdown can close them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from gateway.backends import Backend, SynthesisRequest, create_backend
from gateway.backends.settings import BackendSettings
from gateway.backends.threads import ModelPool
from gateway.config import Config
from gateway.core.cost import FREE, CostEstimate, CostMeter, Price, backend_price, estimate_cost
from gateway.core.pacing import ModelShare, SynthesisTimeModel
from gateway.core.protocol import ErrorCode, ProtocolError
from gateway.server.auth import SUBPROTOCOL, Authenticator, credentials
from gateway.server.rest import rest_routes
from gateway.server.stream import Connection

if TYPE_CHECKING:
    from gateway.server.rest import SpeechStream

__all__ = ["WEB_CLIENT_DIR", "Gateway", "create_app"]

log = logging.getLogger(__name__)

_CALIBRATION_TEXTS = (
    "Hello there.",
    "This longer sentence tells the gateway how the time to synthesize grows with its length.",
)

# The browser client (an ES module) and its demo page, served at /client/ and /. They live in the
# source tree beside the Python packages (clients/js), so a source checkout or an editable install
# serves them; without that directory / answers 404 with a message and /client/ is not mounted.
WEB_CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "js"
# Browsers refuse to run an ES module served with another type; older mime tables lack .mjs.
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/javascript", ".js")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a session is refused: an HTTP status (before the upgrade), a code, a reason."""

    status: int
    code: ErrorCode
    reason: str


class Gateway:
    """Backends, their readiness, and the live connections of one server process."""

    def __init__(
        self, config: Config, backends: Mapping[str, Backend], *, owns_backends: bool = True
    ) -> None:
        self.config = config
        self.backends = dict(backends)
        self._owns_backends = owns_backends  # close them on stop (not when lent by the caller)
        self.connections: set[Connection] = set()
        self.speeches: set[SpeechStream] = set()  # POST /v1/audio/speech responses under way
        self.auth = Authenticator(config)
        # How long each backend takes per call, learned from every session (adaptive chunking).
        self._timing_models: dict[str, SynthesisTimeModel] = {}
        self._model_shares: dict[str, ModelShare] = {}
        self.sessions_per_key: Counter[str] = Counter()
        self._loaded: dict[str, asyncio.Future[Backend]] = {}
        self._loader: asyncio.Task[None] | None = None
        self.accepting = True
        # Every session's audio encoding, off the event loop: libopus releases the GIL, so it
        # runs beside the loop's I/O, and the session closest to running dry goes first.
        threads = config.audio.encode_threads
        self.encoders = ModelPool("encode", threads, clocked=False) if threads else None

    async def start(self) -> None:
        """Begin loading every backend in the background (health turns 200 when all are ready)."""
        loop = asyncio.get_running_loop()
        self._loaded = {name: loop.create_future() for name in self.backends}
        self._loader = asyncio.create_task(self._load_all(), name="backend-loader")

    async def _load_all(self) -> None:
        for name, backend in self.backends.items():
            try:
                await backend.load()
            except Exception as exc:
                log.error("backend %s failed to load: %s", name, exc)
                self._loaded[name].set_exception(exc)
                self._loaded[name].exception()  # retrieved: reported through health and start
            else:
                if self._warms_up(name):
                    await self._calibrate(name, backend)
                log.info("backend %s ready", name)
                self._loaded[name].set_result(backend)

    def timing_model(self, backend: Backend) -> SynthesisTimeModel:
        """What a call to ``backend`` costs in time, as learned so far (shared by sessions)."""
        return self._timing_models.setdefault(backend.name, SynthesisTimeModel())

    def model_share(self, backend: Backend) -> ModelShare:
        """The sessions speaking through ``backend`` now, to size their calls fairly."""
        share = self._model_shares.get(backend.name)
        if share is None:
            share = self._model_shares[backend.name] = ModelShare(getattr(backend, "lanes", 1))
        return share

    def _warms_up(self, name: str) -> bool:
        settings = self.config.backends.get(name)
        return settings is None or settings.warmup

    async def _calibrate(self, name: str, backend: Backend) -> None:
        """Time a short and a longer request, so adaptive chunking starts from real figures."""
        model = self.timing_model(backend)
        for text in _CALIBRATION_TEXTS:
            request = SynthesisRequest(text, backend.default_voice, backend.default_lang, 1.0)
            started = time.perf_counter()
            try:
                async for _ in backend.synthesize(request):
                    pass
            except Exception as exc:  # calibration is best effort; the prior stays
                log.warning("could not time backend %s: %s", name, exc)
                return
            model.observe(len(text), time.perf_counter() - started)
        log.info("backend %s: about %.0f ms + %.1f ms per character", name,
                 model.fixed_s * 1000, model.per_char_s * 1000)  # fmt: skip

    async def loaded(self) -> None:
        """Wait until every backend has loaded or failed to."""
        await asyncio.gather(*self._loaded.values(), return_exceptions=True)

    async def close_sessions(self) -> None:
        """Stop taking sessions; live ones finish their segment (within the shutdown timeout)
        and close with 1001 (going away)."""
        self.accepting = False
        deadline = self.config.server.shutdown_timeout_s / 2
        await asyncio.gather(
            *(c.shut_down(deadline) for c in list(self.connections)),
            *(s.shut_down(deadline) for s in list(self.speeches)),
        )

    def fallback_for(self, backend: Backend) -> Backend | None:
        """The loaded backend configured as ``backend``'s fallback, if any."""
        settings = self.config.backends.get(backend.name)
        name = settings.fallback if settings is not None else ""
        loaded = self._loaded.get(name)
        if not name or loaded is None or not loaded.done() or loaded.exception() is not None:
            return None
        return loaded.result()

    def backend_settings(self, name: str) -> BackendSettings | None:
        """The settings backend ``name`` was built with, else those configured for it."""
        own = getattr(self.backends.get(name), "settings", None)
        return own if isinstance(own, BackendSettings) else self.config.backends.get(name)

    def price(self, name: str) -> Price | None:
        """The price of backend ``name`` (None: unknown). A backend built in-process without
        settings counts as local: free."""
        settings = self.backend_settings(name)
        return FREE if settings is None else backend_price(self.config.cost, name, settings)

    def cost_meter(self, backend: Backend) -> CostMeter:
        """A meter at the backend's price, for a session's or a request's cost."""
        return CostMeter(self.price(backend.name))

    def estimate(self, name: str, text: str, speed: float) -> tuple[CostEstimate, str | None]:
        """What speaking ``text`` on backend ``name`` would cost, and the backend's model
        (None if it has none). The backend need not be loaded; ProtocolError if not served."""
        if name not in self.backends:
            raise ProtocolError(
                ErrorCode.UNKNOWN_BACKEND,
                f"unknown backend {name!r}; available: {', '.join(self.backends)}",
            )
        model = getattr(self.backend_settings(name), "model", None)
        estimate = estimate_cost(
            text,
            self.price(name),
            speed=speed,
            chars_per_minute=self.config.cost.speech_chars_per_minute,
        )
        return estimate, model if isinstance(model, str) and model else None

    def admission_error(self, key_id: str | None, *, live: bool = False) -> Refusal | None:
        """Why a session (or a speech request) cannot be opened now, or None. ``live``: the
        session asking is already counted (it authenticated with a first message)."""
        if not self.accepting:
            return Refusal(503, ErrorCode.SHUTTING_DOWN, "the gateway is shutting down")
        others = len(self.connections) + len(self.speeches) - (1 if live else 0)
        if others >= self.config.limits.max_sessions:
            return Refusal(503, ErrorCode.TOO_MANY_SESSIONS,
                           f"the gateway serves its maximum of {others} sessions")  # fmt: skip
        limit = self.config.limits.max_sessions_per_key
        if key_id is not None and self.sessions_per_key[key_id] >= limit:
            return Refusal(429, ErrorCode.TOO_MANY_SESSIONS,
                           f"this API key has its maximum of {limit} live sessions")  # fmt: skip
        return None

    async def stop(self) -> None:
        """Close every connection, stop loading, release the backends."""
        await self.close_sessions()
        if self._loader is not None:
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
        if self._owns_backends:
            for backend in self.backends.values():
                await backend.aclose()
        if self.encoders is not None:
            self.encoders.shutdown()

    async def ready_backend(self, name: str) -> Backend:
        """The named backend once loaded; raises ProtocolError if unknown or failed to load."""
        loaded = self._loaded.get(name)
        if loaded is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_BACKEND,
                f"unknown backend {name!r}; available: {', '.join(self.backends)}",
            )
        try:
            async with asyncio.timeout(self.config.limits.start_timeout_s):
                return await asyncio.shield(loaded)
        except TimeoutError:
            raise ProtocolError(
                ErrorCode.BACKEND_UNAVAILABLE, f"backend {name!r} is still loading; try again"
            ) from None
        except Exception as exc:  # a backend may fail to load in any way; report, don't crash
            raise ProtocolError(
                ErrorCode.BACKEND_UNAVAILABLE, f"backend {name!r} failed to load: {exc}"
            ) from None

    def status(self) -> dict[str, str]:
        """Per backend: ``loading``, ``ready`` or ``failed: <reason>``."""
        states = {}
        for name, loaded in self._loaded.items():
            if not loaded.done():
                states[name] = "loading"
            elif loaded.exception() is not None:
                states[name] = f"failed: {loaded.exception()}"
            else:
                states[name] = "ready"
        return states


def create_app(config: Config, *, backends: Mapping[str, Backend] | None = None) -> Starlette:
    """The gateway application. ``backends`` replaces the configured ones (tests and embedders
    lend theirs: they are not closed when the application stops)."""
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
        healthy = bool(states) and all(state == "ready" for state in states.values())
        body = {"status": "ok" if healthy else "unavailable", "backends": states}
        return JSONResponse(body, status_code=200 if healthy else 503)

    def unauthorized(request: Request) -> JSONResponse | None:
        if not gateway.auth.required:
            return None
        presented = credentials(request.headers, ()).secret
        if gateway.auth.identify(presented) is not None:
            return None
        return _error_response(401, "unauthorized", "a valid API key or token is required")

    async def voices(request: Request) -> JSONResponse:
        if (denied := unauthorized(request)) is not None:
            return denied
        states = gateway.status()
        listed: list[dict[str, Any]] = [
            {
                "backend": name,
                "id": v.id,
                "name": v.name,
                "language": v.language,
                "gender": v.gender,
                "languages": list(backend.languages),
            }
            for name, backend in gateway.backends.items()
            if states.get(name) == "ready"
            for v in backend.voices()
        ]
        status = 200 if listed or not states else 503
        return JSONResponse({"voices": listed, "backends": states}, status_code=status)

    async def tokens(request: Request) -> JSONResponse:
        """A short-lived token for a browser, in exchange for an API key."""
        key_id = gateway.auth.key_id_of_api_key(credentials(request.headers, ()).secret)
        if key_id is None:
            return _error_response(401, "unauthorized", "POST /v1/tokens needs a valid API key")
        token, ttl = gateway.auth.issue_token(key_id)
        return JSONResponse({"token": token, "expires_in": ttl})

    async def stream(websocket: WebSocket) -> None:
        auth = gateway.auth
        if not auth.origin_allowed(websocket.headers.get("origin")):
            await _deny(websocket, 403, "forbidden", "this Origin may not open sessions")
            return
        offered = websocket.scope.get("subprotocols", [])
        presented = credentials(websocket.headers, offered)
        if offered and presented.subprotocol is None:
            # A browser fails a handshake whose subprotocol it did not offer: say why instead.
            reason = f"offer the {SUBPROTOCOL!r} subprotocol among your subprotocols"
            await _deny(websocket, 400, "invalid_message", reason)
            return
        key_id = auth.identify(presented.secret)
        if presented.secret is not None and key_id is None and auth.required:
            await _deny(websocket, 401, "unauthorized", "invalid API key or token")
            return
        if (refusal := gateway.admission_error(key_id)) is not None:
            await _deny(websocket, refusal.status, refusal.code.value, refusal.reason)
            return
        connection = Connection(websocket, gateway, key_id=key_id,
                                subprotocol=presented.subprotocol)  # fmt: skip
        gateway.connections.add(connection)
        if key_id is not None:  # counted at once, so two handshakes cannot both slip through
            gateway.sessions_per_key[key_id] += 1
        try:
            await connection.run()
        finally:
            gateway.connections.discard(connection)
            if connection.key_id is not None:
                gateway.sessions_per_key[connection.key_id] -= 1

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
        WebSocketRoute("/v1/stream", stream),
        *rest_routes(gateway),
    ]
    if WEB_CLIENT_DIR.is_dir():
        routes.append(Mount("/client", StaticFiles(directory=WEB_CLIENT_DIR)))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    return app


def _error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _deny(websocket: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse a WebSocket before the upgrade, with an HTTP status and a JSON reason."""
    log.info("refused a session: %s %s", status, message)
    await websocket.send_denial_response(_error_response(status, code, message))
