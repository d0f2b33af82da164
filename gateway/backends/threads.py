"""Running a backend's blocking model work in threads, scheduled and safe under cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gateway.backends.base import BackendError
from gateway.core.scheduling import DeadlineScheduler, Policy

__all__ = ["ModelPool", "join", "run_onnx"]

T = TypeVar("T")


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


class ModelPool:
    """Where a local backend runs its model: ``slots`` threads, shared by every session, handed
    out earliest deadline first (or first come, first served) by a
    :class:`~gateway.core.scheduling.DeadlineScheduler`.

    :meth:`run` is safe to cancel: the work is asked to stop (``stop``) and its thread is
    waited for, so a slot is free again only once its thread really is.
    """

    def __init__(self, name: str, slots: int, policy: Policy = Policy.DEADLINE) -> None:
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix=name)
        self._scheduler = DeadlineScheduler(slots, policy)
        self.jobs_running = 0  # work in the threads right now
        self.terminated_runs = 0  # work stopped early by a cancellation

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
        due = time.monotonic() if deadline is None else deadline
        async with self._scheduler.slot(due):
            self.jobs_running += 1
            try:
                future = asyncio.get_running_loop().run_in_executor(self._executor, work)
                try:
                    return await asyncio.shield(future)
                except asyncio.CancelledError:
                    stop()
                    try:
                        await join(future)
                    finally:
                        if future.exception() is not None:
                            self.terminated_runs += 1
                    raise
            finally:
                self.jobs_running -= 1

    async def run_unscheduled(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a thread of the pool without waiting for a slot (loading)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


async def run_onnx(
    models: ModelPool, work: Callable[[Any], T], *, deadline: float | None, label: str
) -> T:
    """Run ONNX Runtime work on ``models``: ``work`` gets the ``RunOptions`` of its session
    runs, so a cancellation terminates the inference under way (and the pool waits for its
    thread). A failure other than a :class:`BackendError` is reported as one, for ``label``.
    """
    import onnxruntime as ort  # only the ONNX backends come here

    run_options = ort.RunOptions()

    def stop() -> None:
        run_options.terminate = True

    try:
        return await models.run(lambda: work(run_options), deadline=deadline, stop=stop)
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(f"{label}: synthesis failed: {exc}") from exc
