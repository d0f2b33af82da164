"""Joining work that a backend runs in its thread pool, safely under cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["join"]


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
