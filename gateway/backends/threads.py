"""Running blocking work in threads, scheduled by deadline and safe under cancellation: an
engine's model passes, and the gateway's audio encoding."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gateway.backends.base import EngineCounters
from gateway.core.errors import BackendError
from gateway.core.scheduling import DeadlineScheduler, Policy

__all__ = ["ComputeClock", "WorkerPool", "join", "run_onnx"]

T = TypeVar("T")


class ComputeClock:
    """Adds up the time model work spends in a :class:`WorkerPool`'s threads for the code that
    opened it, not the waits for a slot: what a call would take on an idle model.

    ``with ComputeClock() as clock:`` around a backend call; runs in the same task (the
    backend's generator is iterated by it) are counted, through a context variable, so no
    backend has to report it.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.runs = 0
        self._token: contextvars.Token[ComputeClock | None] | None = None

    def __enter__(self) -> ComputeClock:
        self._token = _CLOCK.set(self)
        return self

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            _CLOCK.reset(self._token)
            self._token = None


_CLOCK: contextvars.ContextVar[ComputeClock | None] = contextvars.ContextVar(
    "model_compute_clock", default=None
)


async def join(work: asyncio.Future[Any]) -> None:
    """Wait until ``work`` (a thread's future) is done, even if cancelled meanwhile.

    A thread cannot be interrupted, and the engine it uses must not be given to another request
    before it stops; so a cancellation that arrives while waiting is held until then and raised
    afterwards. Callers tell the thread to stop first, so the wait is short. The outcome of
    ``work`` itself is left to the caller.
    """
    cancelled = False
    while not work.done():
        try:
            await asyncio.wait([work])
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


class WorkerPool:
    """``slots`` threads shared by every session, handed out earliest deadline first (or first
    come, first served) by a :class:`~gateway.core.scheduling.DeadlineScheduler`: where a local
    engine runs its model, and where the gateway encodes audio.

    With ``widen_alone`` the slots are cores: work that starts on an idle model with nobody
    waiting is told it may use all of them, any other work one (see the scheduler).

    :meth:`run` is safe to cancel: the work is asked to stop (``stop``) and its thread is
    waited for, so a slot is free again only once its thread really is.

    ``clocked``: runs count on the caller's :class:`ComputeClock` (model work); ``counters``
    (an engine's) count the work running and the work stopped by a cancel.
    """

    def __init__(
        self,
        name: str,
        slots: int,
        policy: Policy = Policy.DEADLINE,
        *,
        clocked: bool = True,
        widen_alone: bool = False,
        counters: EngineCounters | None = None,
    ) -> None:
        self._clocked = clocked
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix=name)
        self._scheduler = DeadlineScheduler(slots, policy, widen_alone=widen_alone)
        self.counters = EngineCounters() if counters is None else counters

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return self._scheduler.waiting

    async def run(
        self,
        work: Callable[[], T],
        *,
        deadline: float | None = None,
        stop: Callable[[], None] = lambda: None,
    ) -> T:
        """Run ``work`` in a thread once a slot is granted (``deadline``: ``time.monotonic``
        seconds; None queues it as due now)."""
        return await self.run_sized(lambda _cores: work(), deadline=deadline, stop=stop)

    async def run_sized(
        self,
        work: Callable[[int], T],
        *,
        deadline: float | None = None,
        stop: Callable[[], None] = lambda: None,
    ) -> T:
        """As :meth:`run`, for work that sizes itself: ``work(cores)`` gets the slots it holds
        (1, or all of them when the pool widens lone work)."""
        due = time.monotonic() if deadline is None else deadline
        clock = _CLOCK.get() if self._clocked else None
        async with self._granted(due) as cores:
            self.counters.running += 1
            started = time.perf_counter()
            try:
                future = asyncio.get_running_loop().run_in_executor(
                    self._executor, functools.partial(work, cores)
                )
                try:
                    return await asyncio.shield(future)
                except asyncio.CancelledError:
                    stop()
                    try:
                        await join(future)
                    finally:
                        if future.exception() is not None:
                            self.counters.stopped += 1
                    raise
            finally:
                self.counters.running -= 1
                if clock is not None:
                    clock.seconds += time.perf_counter() - started
                    clock.runs += 1

    @contextlib.asynccontextmanager
    async def _granted(self, due: float) -> AsyncIterator[int]:
        """A slot of the scheduler (see :meth:`run_sized`), counting the wait for it on the
        counters: work queued now, and the waits and their time once granted."""
        counters = self.counters
        counters.queued += 1
        asked = time.perf_counter()
        waiting = True
        try:
            async with self._scheduler.slot(due) as cores:
                counters.queued -= 1
                waiting = False
                counters.waits += 1
                counters.waited_s += time.perf_counter() - asked
                yield cores
        finally:
            if waiting:
                counters.queued -= 1

    async def run_unscheduled(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a thread of the pool without waiting for a slot (loading)."""
        return await self.submit(work)

    def submit(self, work: Callable[[], T]) -> asyncio.Future[T]:
        """Start ``work`` in a thread of the pool now, without a slot: for engines that hand
        out their own (espeak-ng's engines). The caller owns the future."""
        return asyncio.get_running_loop().run_in_executor(self._executor, work)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


async def run_onnx(
    models: WorkerPool, work: Callable[[Any, int], T], *, deadline: float | None, label: str
) -> T:
    """Run ONNX Runtime work on ``models``: ``work`` gets the ``RunOptions`` of its session
    runs, so a cancellation terminates the inference under way (and the pool waits for its
    thread), and the cores granted (see :meth:`WorkerPool.run`). A failure other than a
    :class:`BackendError` is reported as one, for ``label``.
    """
    import onnxruntime as ort  # only the ONNX backends come here

    run_options = ort.RunOptions()

    def stop() -> None:
        run_options.terminate = True

    try:
        return await models.run_sized(
            lambda cores: work(run_options, cores), deadline=deadline, stop=stop
        )
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(f"{label}: synthesis failed: {exc}") from exc
