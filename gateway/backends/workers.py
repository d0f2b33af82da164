"""Blocking model work in threads: stopping it from the event loop, and handing results back.

Tools for backends whose engine is a blocking library call (PyTorch models):

- :func:`interruptible` / :func:`checkpoint`: a worker thread runs under a stop event; the
  engine calls :func:`checkpoint` at safe points (between generated tokens, and, through
  :func:`install_interrupt_hooks`, before every layer of a PyTorch model), which raises
  :class:`Interrupted` once the event is set. A cancelled request thus stops the model within
  one layer instead of running a whole pass to the end. The stop event is per thread, so a
  model shared by several worker threads stops only the request that was cancelled.
- :class:`ChunkBridge`: a bounded hand-over from one producing thread to one asyncio consumer.
  The producer blocks while the bridge is full (back-pressure: the engine never runs further
  ahead of the listener than the bridge holds) and is released at once when the consumer
  closes the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Generic, TypeVar

from gateway.core.errors import BackendError

__all__ = [
    "ChunkBridge",
    "Interrupted",
    "checkpoint",
    "install_interrupt_hooks",
    "interruptible",
    "require_module",
    "resolve_device",
    "stopping",
]

T = TypeVar("T")
_local = threading.local()


class Interrupted(Exception):
    """Raised in a worker thread at a :func:`checkpoint` after its request was stopped."""


@contextlib.contextmanager
def interruptible(stop: threading.Event) -> Iterator[None]:
    """Run the body with ``stop`` as this thread's stop event (see :func:`checkpoint`)."""
    previous = getattr(_local, "stop", None)
    _local.stop = stop
    try:
        yield
    finally:
        _local.stop = previous


def stopping() -> bool:
    """True if this thread's request was stopped (for code that must wind down itself)."""
    stop: threading.Event | None = getattr(_local, "stop", None)
    return stop is not None and stop.is_set()


def checkpoint() -> None:
    """Raise :class:`Interrupted` if this thread's request was stopped; otherwise do nothing."""
    stop: threading.Event | None = getattr(_local, "stop", None)
    if stop is not None and stop.is_set():
        raise Interrupted


def install_interrupt_hooks(module: Any) -> list[Any]:
    """Make a ``torch.nn.Module`` call :func:`checkpoint` before every submodule runs.

    Returns the hook handles (``handle.remove()`` uninstalls them). Costs one attribute lookup
    per layer call, negligible next to the layer itself.
    """
    return [sub.register_forward_pre_hook(_hook) for sub in module.modules()]


def _hook(_module: Any, _inputs: Any) -> None:
    checkpoint()


class ChunkBridge(Generic[T]):
    """Bounded hand-over of items from one worker thread to one asyncio consumer.

    Create it on the event loop; call :meth:`put` from the worker thread and :meth:`get` from
    the loop. :meth:`close` (from either side) drops what is queued and releases a blocked
    :meth:`put`, which then returns False: the worker should stop.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize: must be at least 1")
        self._loop = asyncio.get_running_loop()
        self._maxsize = maxsize
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._available = asyncio.Event()
        self.high_water = 0  # the most items ever queued at once (for tests and metrics)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> bool:
        """Queue ``item``, waiting while the bridge is full. False if the bridge was closed."""
        with self._cond:
            while len(self._items) >= self._maxsize and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
        self._wake(self._available.set)
        return True

    async def get(self) -> T:
        """The next item, waiting for one. Cancel-safe: an item is taken only when returned."""
        while True:
            with self._cond:
                if self._items:
                    item = self._items.popleft()
                    self._cond.notify_all()
                    return item
                if self._closed:
                    raise RuntimeError("the bridge is closed")
                # Cleared under the lock: a put after this point sets it again.
                self._available.clear()
            await self._available.wait()

    def close(self) -> None:
        """Drop queued items and release the producer; further puts return False."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
        self._wake(self._available.set)

    def _wake(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(callback)


def require_module(name: str, backend: str, extra: str) -> ModuleType:
    """Import an optional dependency, or raise a BackendError that says how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = exc.name or name
        raise BackendError(
            f"{backend}: the Python package {missing!r} is not installed; install the optional "
            f"extra with `pip install 'tts-gateway[{extra}]'`"
        ) from None


def resolve_device(torch: Any, device: str, backend: str) -> str:
    """``auto`` -> ``cuda`` when PyTorch sees a GPU, else ``cpu``; ``cuda`` must be usable."""
    has_cuda = bool(torch.cuda.is_available())
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device.startswith("cuda") and not has_cuda:
        raise BackendError(
            f"{backend}: device {device!r} is configured but PyTorch {torch.__version__} sees no "
            'CUDA device; set device = "cpu" or "auto", or install a CUDA build of torch'
        )
    return device
