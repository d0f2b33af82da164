"""The base of every engine that runs in this process (Kokoro, Piper, espeak-ng, Chatterbox).

A local engine loads once (behind a lock: concurrent ``load`` calls wait for the first),
checks what it loaded, warms up with one short request, and only then reports ``ready``; a
request before that is a :class:`BackendError`. Its model work runs in a
:class:`~gateway.backends.threads.WorkerPool` (earliest deadline first, cancel-safe); engines with
a text front end run it in a text thread beside the pool, so a request never queues for a model
slot to phonemize. :attr:`counters` says what the engine is doing, for tests and metrics.

A subclass implements :meth:`_load` (blocking work goes to ``self._models.run_unscheduled``),
:meth:`_synthesize`, ``voices`` and ``resolve_voice``.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from gateway.backends.base import WARMUP_TEXT, EngineCounters, SynthesisRequest, Voice
from gateway.backends.threads import WorkerPool, join
from gateway.core.chunks import AudioChunk
from gateway.core.errors import BackendError
from gateway.core.scheduling import Policy

__all__ = ["LocalBackend", "LocalSettings"]
T = TypeVar("T")


class LocalSettings(Protocol):
    """What every local engine's settings have."""

    @property
    def kind(self) -> str: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def warmup(self) -> bool: ...
    @property
    def default_voice(self) -> str: ...
    @property
    def default_lang(self) -> str: ...


class LocalBackend(abc.ABC):
    """An engine in this process, ``lanes`` calls at a time (see the module docstring)."""

    model: str | None = None  # local engines bill nothing
    max_input_chars: int | None = None
    sample_rate: int
    languages: tuple[str, ...]
    streams_within_segment: bool
    native_word_timing: bool

    def __init__(
        self,
        name: str,
        settings: LocalSettings,
        *,
        lanes: int,
        policy: Policy = Policy.DEADLINE,
        widen_alone: bool = False,
        text_thread: bool = False,
    ) -> None:
        self.name = name
        self.kind = settings.kind
        self.default_voice = settings.default_voice
        self.default_lang = settings.default_lang
        self.counters = EngineCounters()
        self._warmup = settings.warmup
        self._lanes = lanes
        threads = f"{settings.kind.replace('_', '-')}-{name}"  # e.g. kokoro-torch-kt
        self._models = WorkerPool(threads, lanes, policy, widen_alone=widen_alone,
                                  counters=self.counters)  # fmt: skip
        self._text = (
            ThreadPoolExecutor(1, thread_name_prefix=f"{threads}-text") if text_thread else None
        )
        self._load_lock = asyncio.Lock()
        self._ready = False

    @property
    def ready(self) -> bool:
        """True once :meth:`load` has loaded, checked and warmed up the engine."""
        return self._ready

    @property
    def lanes(self) -> int:
        """Calls the engine runs at once when busy."""
        return self._lanes

    async def load(self) -> None:
        """Load, check and warm up the engine once (idempotent); BackendError on failure."""
        async with self._load_lock:
            if self._ready:
                return
            await self._load()
            if self._warmup:
                await self._warm_up()
            self._ready = True

    @abc.abstractmethod
    async def _load(self) -> None:
        """Load the engine and check the configured defaults against what it offers."""

    async def _warm_up(self) -> None:
        request = SynthesisRequest(WARMUP_TEXT, self.default_voice, self.default_lang, 1.0)
        async for _ in self._synthesize(request):
            pass

    def synthesize(self, request: SynthesisRequest) -> AsyncGenerator[AudioChunk, None]:
        """Stream one segment (see :class:`~gateway.backends.base.Backend`); cancel-safe."""
        if not self._ready:
            raise BackendError(f"backend {self.name!r} is not loaded")
        return self._synthesize(request)

    @abc.abstractmethod
    def _synthesize(self, request: SynthesisRequest) -> AsyncGenerator[AudioChunk, None]:
        """The engine's stream (also used by the warm-up, before ``ready``)."""

    @abc.abstractmethod
    def voices(self) -> list[Voice]: ...

    @abc.abstractmethod
    def resolve_voice(self, name: str) -> str: ...

    async def _in_text_thread(self, work: Callable[[], T]) -> T:
        """Run text work (a front end's phonemization: milliseconds) in the text thread, beside
        the model: it needs no model slot, and queueing it for one would make a request wait
        for a whole inference twice. A cancel waits for the (short) work, then is raised."""
        if self._text is None:
            raise RuntimeError(f"{self.name}: this engine has no text thread")
        work_done = asyncio.get_running_loop().run_in_executor(self._text, work)
        await join(work_done)
        try:
            return work_done.result()
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"{self.name}: cannot read the text: {exc}") from exc

    async def aclose(self) -> None:
        """Release the engine's threads (a later :meth:`load` is not supported)."""
        self._ready = False
        self._models.shutdown()
        if self._text is not None:
            self._text.shutdown(wait=True, cancel_futures=True)
