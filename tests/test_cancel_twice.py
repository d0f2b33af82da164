"""A second cancellation while a Kokoro backend waits for its worker thread to stop.

A thread cannot be interrupted: when a request is cancelled, the backend tells the engine to
stop and waits for the thread (``gateway.backends.threads.join``). If another cancellation
arrives during that wait (a session cancelled, then closed), the backend must go on waiting:
releasing its concurrency slot earlier would give the engine to the next request while the
old one still runs, and would let ``jobs_running`` say the engine is idle when it is not.

To hold the thread at a known place for as long as the test needs, the model call is wrapped
(fault injection): the ONNX test wraps each real Kokoro model run (a front pass or a window),
the PyTorch test uses the stand-in model (no .pth weights can be installed here) with a pass
that ignores the stop until it is released.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from gateway.backends.base import Backend, SynthesisRequest
from gateway.backends.kokoro_onnx import KokoroOnnxBackend
from gateway.backends.kokoro_torch import Checkpoint, KokoroTorchBackend
from gateway.backends.settings import KokoroTorchSettings
from tests.conftest import timeout
from tests.fakes_torch import FakeKModel, until, write_kokoro_checkpoint

TEXT = "The keeper climbed the stairs every evening and lit the lamp for the ships."


class Held:
    """Holds a worker thread after its model call until released (thread-safe flags)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.left_model = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()

    def around(self, call: Callable[[], Any]) -> Any:
        self.entered.set()
        try:
            return call()
        finally:
            self.left_model.set()
            self.release.wait(timeout(60))
            self.returned.set()


async def drain(backend: Backend) -> None:
    request = SynthesisRequest(TEXT, backend.default_voice, backend.default_lang, 1.0)
    async for _ in backend.synthesize(request):
        pass


async def cancel_twice_while_the_thread_runs(
    backend: KokoroOnnxBackend | KokoroTorchBackend, held: Held
) -> None:
    task = asyncio.create_task(drain(backend))
    try:
        await until(held.entered.is_set, timeout(60))
        task.cancel()
        for _ in range(5):
            await asyncio.sleep(0)  # the first cancel is taken: the engine is told to stop
        await until(held.left_model.is_set, timeout(60))  # it stopped; the thread is held
        assert not task.done()
        task.cancel()  # the second cancel, while the backend waits for the thread
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done(), "the request ended while its thread was still running"
        assert backend.counters.running == 1
    finally:
        held.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert held.returned.is_set()
    assert backend.counters.running == 0
    await drain(backend)  # the backend serves the next request


@pytest.mark.model
async def test_kokoro_onnx_waits_for_its_thread_through_a_second_cancel(
    kokoro: KokoroOnnxBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held()
    run = kokoro._run

    async def held_run(work: Callable[[Any, int], Any], deadline: float | None) -> Any:
        return await run(lambda options, cores: held.around(lambda: work(options, cores)), deadline)

    monkeypatch.setattr(kokoro, "_run", held_run)
    await cancel_twice_while_the_thread_runs(kokoro, held)


class StubbornKModel(FakeKModel):
    """The stand-in Kokoro model, with a pass that runs past a stop until released."""

    held = Held()

    def forward_with_tokens(
        self, input_ids: NDArray[np.int64], ref_s: NDArray[np.float32], speed: float
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        result: tuple[NDArray[np.float32], NDArray[np.int64]] = self.held.around(
            lambda: super(StubbornKModel, self).forward_with_tokens(input_ids, ref_s, speed)
        )
        return result


async def test_kokoro_torch_waits_for_its_thread_through_a_second_cancel(tmp_path: Path) -> None:
    held = Held()

    def factory(checkpoint: Checkpoint, device: str) -> StubbornKModel:
        model = StubbornKModel(checkpoint, device)
        model.held = held
        return model

    settings = KokoroTorchSettings(checkpoint_dir=str(write_kokoro_checkpoint(tmp_path / "k")),
                                   warmup=False)  # fmt: skip
    backend = KokoroTorchBackend("kt", settings, model_factory=factory)
    await backend.load()
    try:
        await cancel_twice_while_the_thread_runs(backend, held)
    finally:
        held.release.set()
        await backend.aclose()
