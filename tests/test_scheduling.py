"""The deadline scheduler: earliest deadline first, bounded, cancellable, no starvation."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.core.scheduling import DeadlineScheduler, Policy


async def run_in_order(scheduler: DeadlineScheduler, deadlines: list[float]) -> list[int]:
    """Occupy the only slot, queue requests with ``deadlines``, release: the order served."""
    served: list[int] = []
    hold = asyncio.Event()

    async def holder() -> None:
        async with scheduler.slot(0.0):
            await hold.wait()

    async def request(index: int, deadline: float) -> None:
        async with scheduler.slot(deadline):
            served.append(index)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    tasks = []
    for index, deadline in enumerate(deadlines):
        tasks.append(asyncio.create_task(request(index, deadline)))
        await asyncio.sleep(0)  # arrive in this order
    assert scheduler.waiting == len(deadlines)
    hold.set()
    await asyncio.gather(first, *tasks)
    return served


async def test_earliest_deadline_goes_first() -> None:
    served = await run_in_order(DeadlineScheduler(1), [5.0, 1.0, 3.0, -1.0])
    assert served == [3, 1, 2, 0]


async def test_fifo_policy_serves_in_arrival_order() -> None:
    served = await run_in_order(DeadlineScheduler(1, Policy.FIFO), [5.0, 1.0, 3.0, -1.0])
    assert served == [0, 1, 2, 3]


async def test_equal_deadlines_keep_arrival_order() -> None:
    assert await run_in_order(DeadlineScheduler(1), [2.0, 2.0, 2.0]) == [0, 1, 2]


async def test_no_more_than_the_slots_run_at_once() -> None:
    scheduler = DeadlineScheduler(2)
    running = peak = 0

    async def work(deadline: float) -> None:
        nonlocal running, peak
        async with scheduler.slot(deadline):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.001)
            running -= 1

    await asyncio.gather(*(work(float(i % 3)) for i in range(20)))
    assert peak == 2
    assert scheduler.waiting == 0


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    scheduler = DeadlineScheduler(1)
    hold = asyncio.Event()
    served: list[str] = []

    async def holder() -> None:
        async with scheduler.slot(0.0):
            await hold.wait()

    async def request(name: str, deadline: float) -> None:
        async with scheduler.slot(deadline):
            served.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    urgent = asyncio.create_task(request("urgent", 1.0))
    later = asyncio.create_task(request("later", 2.0))
    await asyncio.sleep(0)
    urgent.cancel()  # barge-in while it waits
    with pytest.raises(asyncio.CancelledError):
        await urgent
    assert scheduler.waiting == 1
    hold.set()
    await asyncio.gather(first, later)
    assert served == ["later"]


async def test_a_grant_that_meets_a_cancel_is_passed_on() -> None:
    scheduler = DeadlineScheduler(1)
    await scheduler._acquire(0.0)  # the only slot is taken
    doomed = asyncio.create_task(scheduler._acquire(1.0))
    await asyncio.sleep(0)
    assert scheduler.waiting == 1
    scheduler._release(1)  # the slot goes to ``doomed``...
    doomed.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await doomed
    async with asyncio.timeout(1), scheduler.slot(0.0):  # the slot was passed on, not lost
        pass


async def test_waiting_long_enough_wins_nothing_starves() -> None:
    """A deadline is a time: a request queued early is served before later, laxer ones, even
    while urgent work keeps arriving behind it."""
    scheduler = DeadlineScheduler(1)
    served: list[str] = []
    now = 0.0

    async def request(name: str, deadline: float) -> None:
        async with scheduler.slot(deadline):
            served.append(name)
            await asyncio.sleep(0.001)

    tasks = [asyncio.create_task(request("old", now + 1.0))]
    for i in range(10):
        now += 0.5  # time passes; newcomers are urgent relative to *their* now
        tasks.append(asyncio.create_task(request(f"new{i}", now + 0.1)))
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    assert served.index("old") <= 2


class CoreLedger:
    """Work that holds a scheduler's slots until told to go, recording the cores it was given
    and the most cores held at once."""

    def __init__(self, scheduler: DeadlineScheduler) -> None:
        self.scheduler = scheduler
        self.held = self.peak = 0
        self.granted: dict[str, int] = {}
        self.release: dict[str, asyncio.Event] = {}

    async def work(self, name: str, deadline: float = 0.0) -> None:
        self.release[name] = asyncio.Event()
        async with self.scheduler.slot(deadline) as cores:
            self.granted[name] = cores
            self.held += cores
            self.peak = max(self.peak, self.held)
            await self.release[name].wait()
            self.held -= cores


async def test_a_lone_request_on_an_idle_model_gets_every_core() -> None:
    ledger = CoreLedger(DeadlineScheduler(2, widen_alone=True))
    alone = asyncio.create_task(ledger.work("alone"))
    await asyncio.sleep(0)
    assert ledger.granted == {"alone": 2}
    behind = asyncio.create_task(ledger.work("behind"))  # the model is busy: it waits
    await asyncio.sleep(0)
    assert "behind" not in ledger.granted
    ledger.release["alone"].set()
    await alone
    await asyncio.sleep(0)
    assert ledger.granted["behind"] == 1  # it waited: one core, even served alone
    ledger.release["behind"].set()
    await behind
    assert ledger.peak == 2
    again = asyncio.create_task(ledger.work("again"))  # the model idle again: every core
    await asyncio.sleep(0)
    assert ledger.granted["again"] == 2
    ledger.release["again"].set()
    await again


async def test_two_sessions_taking_turns_run_side_by_side_on_one_core_each() -> None:
    """Two streaming sessions each ask for their next window once the last is done. Had the
    one that waited been granted every core because it was alone in the queue at that moment,
    they would alternate on two cores each forever (a third less speech per CPU second)."""
    ledger = CoreLedger(DeadlineScheduler(2, widen_alone=True))
    tasks = {name: asyncio.create_task(ledger.work(f"{name}0")) for name in "ab"}
    await asyncio.sleep(0)
    assert ledger.granted == {"a0": 2}  # "b0" waits
    for turn in range(1, 4):
        ledger.release[f"a{turn - 1}"].set()
        await tasks["a"]
        await asyncio.sleep(0)
        tasks["a"] = asyncio.create_task(ledger.work(f"a{turn}"))  # a's next window
        await asyncio.sleep(0)
        assert ledger.granted[f"a{turn}"] == 1, turn
        assert ledger.held == 2  # both sessions run, one core each
        ledger.release[f"b{turn - 1}"].set()
        await tasks["b"]
        tasks["b"] = asyncio.create_task(ledger.work(f"b{turn}"))
        await asyncio.sleep(0)
        assert ledger.granted[f"b{turn}"] == 1, turn
    for name in "ab":
        ledger.release[f"{name}3"].set()
        await tasks[name]
    assert ledger.peak == 2


async def test_requests_that_wait_together_get_one_core_each() -> None:
    ledger = CoreLedger(DeadlineScheduler(2, widen_alone=True))
    first = asyncio.create_task(ledger.work("first"))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(ledger.work(name, 1.0)) for name in ("a", "b", "c")]
    await asyncio.sleep(0)
    ledger.release["first"].set()
    await first
    await asyncio.sleep(0)
    assert ledger.granted == {"first": 2, "a": 1, "b": 1}  # two single-core runs at once
    ledger.release["a"].set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    # "b" still runs on one core, so "c" gets the other one, not both.
    assert ledger.granted["c"] == 1
    for name in ("b", "c"):
        ledger.release[name].set()
    await asyncio.gather(*queued)
    assert ledger.peak == 2  # never more cores held than there are


async def test_without_widening_every_holder_gets_one_slot() -> None:
    ledger = CoreLedger(DeadlineScheduler(2))
    task = asyncio.create_task(ledger.work("alone"))
    await asyncio.sleep(0)
    assert ledger.granted == {"alone": 1}
    ledger.release["alone"].set()
    await task


async def test_a_grant_that_meets_a_cancel_passes_its_core_on() -> None:
    scheduler = DeadlineScheduler(2, widen_alone=True)
    assert await scheduler._acquire(0.0) == 2
    doomed = asyncio.create_task(scheduler._acquire(1.0))
    await asyncio.sleep(0)
    scheduler._release(2)  # a core goes to ``doomed``, alone in the queue...
    doomed.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await doomed
    async with asyncio.timeout(1), scheduler.slot(0.0) as cores:
        assert cores == 2


async def test_the_model_pool_runs_work_in_deadline_order_and_stops_it_on_cancel() -> None:
    import threading

    from gateway.backends.threads import WorkerPool

    pool = WorkerPool("test", 1)
    gate = threading.Event()
    order: list[str] = []

    def blocking(name: str) -> str:
        gate.wait(5)
        order.append(name)
        return name

    first = asyncio.create_task(pool.run(lambda: blocking("first"), deadline=0.0))
    await asyncio.sleep(0.01)
    late = asyncio.create_task(pool.run(lambda: blocking("late"), deadline=10.0))
    soon = asyncio.create_task(pool.run(lambda: blocking("soon"), deadline=5.0))
    await asyncio.sleep(0.01)
    assert (pool.counters.running, pool.waiting) == (1, 2)
    gate.set()
    assert list(await asyncio.gather(first, late, soon)) == ["first", "late", "soon"]
    assert order == ["first", "soon", "late"]

    stopped = threading.Event()
    running = asyncio.create_task(pool.run(lambda: stopped.wait(5), stop=stopped.set))
    await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert stopped.is_set()  # the work was told to stop...
    assert pool.counters.running == 0  # ...and its thread was waited for
    pool.shutdown()


async def test_the_compute_clock_counts_model_time_not_the_wait_for_a_slot() -> None:
    import threading

    from gateway.backends.threads import ComputeClock, WorkerPool

    pool = WorkerPool("test", 1)
    unclocked = WorkerPool("encode", 1, clocked=False)
    gate = threading.Event()
    holder = asyncio.create_task(pool.run(lambda: gate.wait(5), deadline=0.0))
    await asyncio.sleep(0.01)

    async def call() -> ComputeClock:
        with ComputeClock() as clock:
            await pool.run(lambda: time.sleep(0.05), deadline=1.0)
            await unclocked.run(lambda: time.sleep(0.05))
        return clock

    waiting = asyncio.create_task(call())
    await asyncio.sleep(0.5)  # the call waits for the slot all this time
    gate.set()
    await holder
    clock = await waiting
    assert clock.runs == 1  # the encoder pool's work is not model time
    assert 0.05 <= clock.seconds < 0.45
    with ComputeClock() as outside:
        pass
    await pool.run(lambda: None)  # no clock open: nothing is counted anywhere
    assert (outside.runs, clock.runs) == (0, 1)
    pool.shutdown()
    unclocked.shutdown()
