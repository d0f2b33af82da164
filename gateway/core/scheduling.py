"""Who synthesizes next: a bounded pool of model slots shared by every session of a backend.

On few cores the model is the bottleneck. Handing its slots out first come, first served lets a
session with seconds of audio buffered hold up one about to run dry. The
:class:`DeadlineScheduler` grants a free slot to the waiting request with the earliest
deadline (the moment its listener would run out of audio; the callers set it, see
``gateway.server.speaker.Speaker._deadline``: a new turn's first segment is due within the
latency target). Deadlines are absolute times, so a request waiting long enough becomes the
earliest: nothing starves.
Waiting is cancellable (a barge-in drops its request from the queue at once).

No I/O; the clock is whatever the caller's deadlines are measured on (``time.monotonic``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["DeadlineScheduler", "Policy"]


class Policy(enum.StrEnum):
    """How waiting requests are ordered."""

    DEADLINE = "deadline"  # earliest deadline first
    FIFO = "fifo"  # first come, first served (for comparison)


@dataclass(order=True)
class _Waiter:
    key: float
    order: int
    granted: asyncio.Future[None] = field(compare=False)


class DeadlineScheduler:
    """``slots`` concurrent holders at most; waiters are served by ``policy``."""

    def __init__(self, slots: int, policy: Policy = Policy.DEADLINE) -> None:
        if slots < 1:
            raise ValueError("slots: must be at least 1")
        self._free = slots
        self._policy = policy
        self._waiting: list[_Waiter] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return sum(1 for waiter in self._waiting if not waiter.granted.done())

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[None]:
        """Hold a slot for the body; ``deadline`` orders the wait (earlier goes first)."""
        await self._acquire(deadline)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, deadline: float) -> None:
        order = next(self._order)
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        key = deadline if self._policy is Policy.DEADLINE else float(order)
        waiter = _Waiter(key, order, asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiting, waiter)
        try:
            await waiter.granted
        except asyncio.CancelledError:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self._release()  # granted just as it was cancelled: pass the slot on
            raise

    def _release(self) -> None:
        while self._waiting:
            waiter = heapq.heappop(self._waiting)
            if waiter.granted.done():  # cancelled while waiting
                continue
            waiter.granted.set_result(None)
            return
        self._free += 1
