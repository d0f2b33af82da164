"""The :class:`Gateway`: one server process's backends, their loading and readiness, the
speaking pipeline's shared state, admission (its load, :meth:`Gateway.load_report`, and the per-key
limits, shared through Redis in a cluster), its metrics, and the live sessions (held through the
small :class:`LiveSession` protocol, so the edges that serve sessions are not imported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Final, Protocol

from gateway.backends import Backend
from gateway.backends.registry import price_key
from gateway.backends.threads import WorkerPool
from gateway.config import Config
from gateway.core.admission import LoadReport, load_report
from gateway.core.cost import CostEstimate, Price, PriceKey, backend_price, estimate_cost
from gateway.core.errors import ErrorCode, ProtocolError
from gateway.core.load import Load
from gateway.core.pacing import SynthesisTimeModel
from gateway.server.auth import Authenticator
from gateway.server.limits import Refusal, key_limits
from gateway.server.metrics import GatewayMetrics
from gateway.speech.shared import SpeechServices, SpeechSettings

__all__ = ["Gateway", "LiveSession", "Refusal"]

log = logging.getLogger(__name__)

# The share of the speaking sessions that must have run dry for the gateway to be saturated.
_STALLED_SHARE: Final = 0.25


class LiveSession(Protocol):
    """A session being served (a WebSocket connection, a REST speech response)."""

    @property
    def key_id(self) -> str | None:
        """The API key it was opened with (None: none)."""
        ...

    @property
    def edge(self) -> str:
        """Where it is served (a metrics label): ``stream`` (the WebSocket), ``rest`` or
        ``elevenlabs``."""
        ...

    async def shut_down(self, finish_within_s: float) -> None:
        """The gateway is stopping: finish the segment being spoken (within the time), report
        what will not be spoken, end."""
        ...


class Gateway:
    """Backends, their readiness, and the live sessions of one server process."""

    def __init__(
        self, config: Config, backends: Mapping[str, Backend], *, owns_backends: bool = True
    ) -> None:
        self.config = config
        self.backends = dict(backends)
        self._owns_backends = owns_backends  # close them on stop (not when lent by the caller)
        self.sessions: set[LiveSession] = set()
        # Sockets still waiting for an `auth` message: apart from the sessions, with their own
        # small cap (auth.max_unauthenticated), so they cannot take the sessions' slots.
        self.unauthenticated: set[LiveSession] = set()
        self.auth = Authenticator(config)
        # Per-key session caps and rates: in Redis with [cluster] redis_url, else here.
        self.limits = key_limits(config)
        self._loaded: dict[str, asyncio.Future[Backend]] = {}
        self._loader: asyncio.Task[None] | None = None
        self.accepting = True
        # Every session's audio encoding, off the event loop: libopus releases the GIL, so it
        # runs beside the loop's I/O, and the session closest to running dry goes first.
        threads = config.audio.encode_threads
        encoders = WorkerPool("encode", threads, clocked=False) if threads else None
        self.speech = SpeechServices(
            SpeechSettings.from_config(config),
            price=lambda backend: self.price(price_key(backend)),
            fallback_for=self.fallback_for,
            recover_after_s=self._recover_after_s,
            encoders=encoders,
            saturated=self.saturated,
        )
        self.metrics = GatewayMetrics(
            load=self.load_report,
            engines=lambda: {name: b.counters for name, b in self.backends.items()},
            sessions=lambda: Counter(s.edge for s in self.sessions),
            sample_rate=config.audio.sample_rate,
        )
        self.speech.call_observers.append(self.metrics.call_ended)

    # -- backends --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin loading every backend in the background (health turns 200 when all are ready)."""
        server = self.config.server
        if not server.on_loopback and not self.config.auth_required:
            log.warning("auth.required = \"no\": listening on %s without authentication, so "
                        "anyone who can reach it may use it", server.host)  # fmt: skip
        loop = asyncio.get_running_loop()
        self._loaded = {name: loop.create_future() for name in self.backends}
        self._loader = asyncio.create_task(self._load_all(), name="backend-loader")
        await self.limits.start()
        if self.config.cluster.redis_url and not self.auth.tokens.shared:
            log.warning(
                "[cluster] redis_url is set but auth.token_secrets is empty: tokens "
                "from POST /v1/tokens are valid only on the replica that issued them"
            )

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
                    await self.speech.calibrate(backend)
                log.info("backend %s ready", name)
                self._loaded[name].set_result(backend)

    def _warms_up(self, name: str) -> bool:
        settings = self.config.backends.get(name)
        return settings is None or settings.warmup

    async def loaded(self) -> None:
        """Wait until every backend has loaded or failed to."""
        await asyncio.gather(*self._loaded.values(), return_exceptions=True)

    def timing_model(self, backend: Backend) -> SynthesisTimeModel:
        """What a call to ``backend`` costs in time, as learned so far (shared by sessions)."""
        return self.speech.timing_model(backend)

    def fallback_for(self, backend: Backend) -> Backend | None:
        """The loaded backend configured as ``backend``'s fallback, if any."""
        settings = self.config.backends.get(backend.name)
        name = settings.fallback if settings is not None else ""
        loaded = self._loaded.get(name)
        if not name or loaded is None or not loaded.done() or loaded.exception() is not None:
            return None
        return loaded.result()

    def _recover_after_s(self, backend: Backend) -> float:
        settings = self.config.backends.get(backend.name)
        return settings.fallback_recover_s if settings is not None else 0.0

    async def ready_backend(self, name: str) -> Backend:
        """The named backend once loaded; raises ProtocolError if unknown or failed to load."""
        loaded = self._loaded.get(name)
        if loaded is None:
            raise self.unknown_backend(name)
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

    def unknown_backend(self, name: str) -> ProtocolError:
        return ProtocolError(
            ErrorCode.UNKNOWN_BACKEND,
            f"unknown backend {name!r}; available: {', '.join(self.backends)}",
        )

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

    # -- prices ----------------------------------------------------------------------------------

    def price(self, key: PriceKey) -> Price | None:
        """The price of the backend ``key`` names (None: unknown)."""
        return backend_price(self.config.cost, key)

    def estimate(self, name: str, text: str, speed: float) -> tuple[CostEstimate, str | None]:
        """What speaking ``text`` on backend ``name`` would cost, and the backend's model
        (None if it has none). The backend need not be loaded; ProtocolError if not served."""
        backend = self.backends.get(name)
        if backend is None:
            raise self.unknown_backend(name)
        estimate = estimate_cost(
            text,
            self.price(price_key(backend)),
            speed=speed,
            chars_per_minute=self.config.cost.speech_chars_per_minute,
        )
        return estimate, backend.model or None

    # -- load ------------------------------------------------------------------------------------

    def stalls(self) -> Load:
        """The sessions that spoke in the last few seconds, and those of them whose listener ran
        dry while they had work."""
        return self.speech.load.load(time.monotonic())

    def saturated(self) -> bool:
        """The gateway's verdict on its load: saturated when at least one session, and at least
        a quarter of those speaking, let its listener run dry lately (too many sessions for the
        cores or the backends): what was observed, reported in ``progress`` and ``/healthz``.
        Admission predicts instead, from :meth:`load_report`, before a listener runs dry."""
        load = self.stalls()
        return load.stalled > 0 and load.stalled >= _STALLED_SHARE * load.speaking

    def load_report(self) -> LoadReport:
        """This replica's load: sessions, model queues and the scheduler's verdict on one more
        session (:mod:`gateway.core.admission`); ``over_capacity`` at or above
        ``cluster.max_load``. What admission, ``/healthz`` and ``/metrics`` ask."""
        return load_report(len(self.sessions), self.config.limits.max_sessions,
                           self.speech.model_loads(time.monotonic()),
                           max_load=self.config.cluster.max_load)  # fmt: skip

    # -- sessions --------------------------------------------------------------------------------

    def admission_error(self, *, waiting: bool = False) -> Refusal | None:
        """Why this replica cannot open a session (or a speech request) now, whatever its key,
        or None. ``waiting``: a socket that will wait for an `auth` message (counted apart
        from the sessions, with its own cap)."""
        if not self.accepting:
            return Refusal(503, ErrorCode.SHUTTING_DOWN, "the gateway is shutting down")
        if waiting:
            cap = self.config.auth.max_unauthenticated
            if len(self.unauthenticated) >= cap:
                reason = (f"{cap} connections already wait for credentials; send them with the "
                          "upgrade (Authorization header or bearer. subprotocol)")  # fmt: skip
                return Refusal(503, ErrorCode.TOO_MANY_SESSIONS, reason)
            return None
        live = len(self.sessions)
        if live >= self.config.limits.max_sessions:
            return Refusal(503, ErrorCode.TOO_MANY_SESSIONS,
                           f"the gateway serves its maximum of {live} sessions")  # fmt: skip
        load = self.load_report()
        if load.over_capacity:
            return Refusal(503, ErrorCode.OVER_CAPACITY,
                           f"this replica is over capacity (load {load.load:.2f}); "
                           "try another one")  # fmt: skip
        return None

    async def admit(self, session: object, key_id: str | None) -> Refusal | None:
        """Admit ``session`` (a session or speech request about to be served, not counted yet)
        for ``key_id``: its key's limits (shared by the replicas) and this replica's, or why
        not. An admitted session is counted against its key until :meth:`serving` ends."""
        if key_id is not None:
            refusal = await self.limits.acquire(key_id, session)
            if refusal is not None:
                self.metrics.refused.labels(refusal.code.value).inc()
                return refusal
        refusal = self.admission_error()  # after the await: the count is current
        if refusal is not None:
            self.limits.release(session)
            self.metrics.refused.labels(refusal.code.value).inc()
        return refusal

    @contextlib.contextmanager
    def serving(self, session: LiveSession, *, waiting: bool = False) -> Iterator[None]:
        """Count ``session`` while it is served (admitted by :meth:`admit`), or, ``waiting``
        for credentials, apart until :meth:`admit_waiting` counts it; its key's count ends
        with it."""
        if waiting:
            self.unauthenticated.add(session)
        else:
            self._count(session)
        try:
            yield
        finally:
            self.unauthenticated.discard(session)
            self.sessions.discard(session)
            self.limits.release(session)

    async def admit_waiting(self, session: LiveSession, key_id: str) -> Refusal | None:
        """A socket that waited for credentials presented ``key_id``'s: admit it and count it
        as a session from now on, or say why it cannot be one."""
        refusal = await self.admit(session, key_id)
        if refusal is None and session in self.unauthenticated:
            self.unauthenticated.discard(session)
            self._count(session)
        return refusal

    def _count(self, session: LiveSession) -> None:
        self.sessions.add(session)
        self.metrics.admitted.labels(session.edge).inc()

    async def close_sessions(self) -> None:
        """Stop taking sessions; live ones finish their segment (within the shutdown timeout)
        and end."""
        self.accepting = False
        deadline = self.config.server.shutdown_timeout_s / 2
        live = [*self.sessions, *self.unauthenticated]
        await asyncio.gather(*(s.shut_down(deadline) for s in live))

    async def stop(self) -> None:
        """Close every session, stop loading, release the backends."""
        await self.close_sessions()
        if self._loader is not None:
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
        await self.limits.aclose()
        if self._owns_backends:
            for backend in self.backends.values():
                await backend.aclose()
        if self.speech.encoders is not None:
            self.speech.encoders.shutdown()
