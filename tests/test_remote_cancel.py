"""A remote backend stays usable however its requests are cancelled.

httpx's connection pool (httpcore 1.0) guards its bookkeeping with cancel scopes that asyncio's
``Task.cancel()`` goes through: a cancellation that lands while the pool closes a finished
response leaves the connection marked busy for good (encode/httpcore#830, #1093), and with
``max_concurrency`` connections every later request would wait forever. The gateway cancels a
session's synthesis with ``Task.cancel()`` at any moment (barge-in), so the backends must keep
such a cancellation out of httpx.

The test cancels a request after every number of event-loop steps from its start to its end,
so one of the cancellations lands in that closing step, and checks each time that the backend
(one connection) still completes a request. The server is the OpenAI-compatible test server
over the tone backend, on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.backends.alltalk import AllTalkBackend
from gateway.backends.base import Backend, SynthesisRequest
from gateway.backends.openai_speech import OpenAIBackend
from gateway.backends.remote import RemoteBackend
from gateway.backends.settings import AllTalkSettings, OpenAISettings
from tests.conftest import timeout
from tests.fakes import ToneBackend
from tests.openai_compatible_server import alltalk_app, openai_compatible_app
from tests.servers import served

TEXT = "One two three four."


async def steps_to_finish(backend: Backend, voice: str) -> int:
    """Event-loop steps one whole request takes (counted by a task that yields each step)."""
    steps = 0
    done = asyncio.Event()

    async def count() -> None:
        nonlocal steps
        while not done.is_set():
            steps += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count())
    await speak(backend, voice)
    done.set()
    await counter
    return steps


async def speak(backend: Backend, voice: str) -> int:
    request = SynthesisRequest(TEXT, voice, backend.default_lang, 1.0)
    async with asyncio.timeout(timeout(10)):  # a backend with a lost connection hangs here
        return sum([len(chunk.pcm) async for chunk in backend.synthesize(request)])


async def cancel_at_every_step(backend: RemoteBackend, voice: str) -> None:
    whole = await speak(backend, voice)
    assert whole > 0
    steps = await steps_to_finish(backend, voice)
    for step in range(steps + 5):
        task = asyncio.create_task(speak(backend, voice))
        for _ in range(step):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert backend.counters.running == 0
        assert await speak(backend, voice) == whole, f"after a cancel at step {step}"


@pytest.fixture
async def tone() -> ToneBackend:
    tone = ToneBackend("tone")
    await tone.load()
    return tone


async def test_openai_survives_a_cancel_at_any_step(tone: ToneBackend) -> None:
    async with served(openai_compatible_app({"tone": tone})) as server:
        settings = OpenAISettings(base_url=server.url, model="tone", voices=("tone",),
                                  default_voice="tone", max_concurrency=1)  # fmt: skip
        backend = OpenAIBackend("openai", settings)
        await backend.load()
        try:
            await cancel_at_every_step(backend, "tone")
        finally:
            await backend.aclose()


async def test_alltalk_survives_a_cancel_at_any_step(tone: ToneBackend) -> None:
    async with served(alltalk_app(tone, voice_map={"alloy": "tone"})) as server:
        settings = AllTalkSettings(base_url=server.url, voice_map={"alloy": "tone"})
        backend = AllTalkBackend("alltalk", settings)
        await backend.load()
        try:
            await cancel_at_every_step(backend, "alloy")
        finally:
            await backend.aclose()
