"""Who synthesizes next: a bounded pool of model slots shared by every session of a backend.

On few cores the model is the bottleneck. Handing its slots out first come, first served lets a
session with seconds of audio buffered hold up one about to run dry. The
:class:`DeadlineScheduler` grants a free slot to the waiting request with the earliest
deadline (the moment its listener would run out of audio; the callers set it, see
``gateway.speech.chunking.CallPlanner.deadline``: a new turn's first segment is due within the
latency target). Deadlines are absolute times, so a request waiting long enough becomes the
earliest: nothing starves.
Waiting is cancellable (a barge-in drops its request from the queue at once).

With ``widen_alone`` the slots are cores: a request that finds the model idle and nobody else
waiting holds them all (one inference on every core: the lowest latency), any other holds one
(one single-threaded inference per core: more speech per CPU second, the work of a busy model).
A request that had to wait holds one even if it is alone when its turn comes: whoever it waited
for is most likely about to come back (a streaming session asks for its next window as soon as
its last one is done), and granting every core to each in turn kept two sessions alternating on
two cores each (a third less speech per CPU second than one core each) until they ran dry.

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
    granted: asyncio.Future[int] = field(compare=False)  # the slots granted


class DeadlineScheduler:
    """``slots`` concurrent holders at most; waiters are served by ``policy``.

    :meth:`slot` tells each holder how many slots it holds: one, or all of them when
    ``widen_alone`` is set and it found the model idle and nobody else waiting.
    """

    def __init__(
        self, slots: int, policy: Policy = Policy.DEADLINE, *, widen_alone: bool = False
    ) -> None:
        if slots < 1:
            raise ValueError("slots: must be at least 1")
        self._slots = slots
        self._free = slots
        self._widen_alone = widen_alone
        self._policy = policy
        self._waiting: list[_Waiter] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return sum(1 for waiter in self._waiting if not waiter.granted.done())

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[int]:
        """Hold a slot for the body, which gets the number of slots held; ``deadline`` orders
        the wait (earlier goes first)."""
        held = await self._acquire(deadline)
        try:
            yield held
        finally:
            self._release(held)

    async def _acquire(self, deadline: float) -> int:
        order = next(self._order)
        if self._free > 0 and not self.waiting:
            return self._take(widen=self._free == self._slots)
        key = deadline if self._policy is Policy.DEADLINE else float(order)
        waiter = _Waiter(key, order, asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiting, waiter)
        try:
            return await waiter.granted
        except asyncio.CancelledError:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self._release(waiter.granted.result())  # granted as it was cancelled: pass it on
            raise

    def _take(self, *, widen: bool) -> int:
        """Take the slots of one grant: all of them if ``widen`` (a lone request that found
        the model idle) and ``widen_alone``, else one."""
        held = self._slots if self._widen_alone and widen else 1
        self._free -= held
        return held

    def _release(self, held: int) -> None:
        self._free += held
        while self._free > 0 and self._waiting:
            waiter = heapq.heappop(self._waiting)
            if waiter.granted.done():  # cancelled while waiting
                continue
            waiter.granted.set_result(self._take(widen=False))  # it waited (module docstring)
