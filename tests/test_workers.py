"""Worker-thread tools (stop checks, the bounded thread->asyncio bridge) and the overlap joiner."""

from __future__ import annotations

import asyncio
import itertools
import threading

import numpy as np
import pytest

from gateway.backends.workers import ChunkBridge, Interrupted, checkpoint, interruptible
from gateway.core.crossfade import OverlapJoiner, equal_power_ramps
from tests.conftest import timeout
from tests.fakes_torch import until


def test_checkpoint_raises_only_in_the_stopped_thread() -> None:
    stop = threading.Event()
    checkpoint()  # outside any request: nothing to stop
    with interruptible(stop):
        checkpoint()
        stop.set()
        with pytest.raises(Interrupted):
            checkpoint()
        other: list[BaseException | None] = []

        def elsewhere() -> None:
            try:
                checkpoint()
                other.append(None)
            except Interrupted as exc:
                other.append(exc)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert other == [None]  # another thread's request is not stopped
    checkpoint()  # the previous (no) stop event is restored


async def test_bridge_hands_items_over_in_order_and_bounds_the_producer() -> None:
    bridge: ChunkBridge[int] = ChunkBridge(maxsize=2)
    results: list[bool] = []

    def produce() -> None:
        for item in range(10):
            results.append(bridge.put(item))

    worker = asyncio.get_running_loop().run_in_executor(None, produce)
    async with asyncio.timeout(timeout(10)):
        assert [await bridge.get() for _ in range(10)] == list(range(10))
        await worker
    assert results == [True] * 10
    assert bridge.high_water <= 2


async def test_closing_the_bridge_releases_a_blocked_producer() -> None:
    bridge: ChunkBridge[int] = ChunkBridge(maxsize=2)
    results: list[bool] = []
    two_in = threading.Event()

    def produce() -> None:
        for item in range(5):
            results.append(bridge.put(item))
            if len(results) == 2:
                two_in.set()
            if not results[-1]:
                return

    worker = asyncio.get_running_loop().run_in_executor(None, produce)
    await until(two_in.is_set, timeout(10))
    async with asyncio.timeout(timeout(10)):
        # Nothing was taken, so the third put cannot have succeeded: it waits for room.
        bridge.close()
        await worker
    assert results == [True, True, False]
    assert bridge.high_water == 2


def test_equal_power_ramps_keep_the_power() -> None:
    fade_out, fade_in = equal_power_ramps(480)
    assert np.allclose(fade_out**2 + fade_in**2, 1.0, atol=1e-6)
    assert fade_out[0] > 0.99
    assert fade_in[0] < 0.01
    assert fade_out[-1] < 0.01
    assert fade_in[-1] > 0.99
    assert np.all(np.diff(fade_out) < 0)
    assert np.all(np.diff(fade_in) > 0)


def test_overlap_joiner_keeps_length_and_joins_smoothly() -> None:
    """Renditions of one tone with different phases: cut hard, they step; joined, they don't."""
    rate, hz, overlap = 24000, 200.0, 480
    t = np.arange(rate) / rate
    joiner = OverlapJoiner(overlap)
    out = []
    boundaries = [0, 4000, 9000, 15000, 24000]
    for index, (start, end) in enumerate(itertools.pairwise(boundaries)):
        context = min(start, 2000)
        phase = index * 2 * np.pi / 3
        rendition = 0.3 * np.sin(2 * np.pi * hz * t[start - context : end] + phase)
        out.append(joiner.push(rendition.astype(np.float32), context))
    out.append(joiner.finish())
    joined = np.concatenate(out)
    assert len(joined) == rate  # every sample of the timeline once
    slope = 0.3 * 2 * np.pi * hz / rate
    assert np.abs(np.diff(joined)).max() <= 1.05 * slope
    # The same renditions cut without a crossfade step at the joins.
    hard = OverlapJoiner(0)
    cut = [
        hard.push((0.3 * np.sin(2 * np.pi * hz * t[s:e] + i * 2 * np.pi / 3)).astype(np.float32), 0)
        for i, (s, e) in enumerate(itertools.pairwise(boundaries))
    ]
    assert np.abs(np.diff(np.concatenate(cut))).max() > 5 * slope


def test_overlap_joiner_with_a_short_context_fades_over_what_overlaps() -> None:
    joiner = OverlapJoiner(100)
    first = joiner.push(np.ones(300, np.float32), 0)
    assert len(first) == 200
    second = joiner.push(np.ones(340, np.float32), 40)  # only 40 samples re-rendered
    tail = joiner.finish()
    assert len(first) + len(second) + len(tail) == 300 + 300
    with pytest.raises(ValueError, match="outside the rendition"):
        joiner.push(np.ones(10, np.float32), 11)
