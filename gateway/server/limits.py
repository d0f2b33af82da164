"""Per-API-key limits: live sessions (``limits.max_sessions_per_key``) and new sessions per
minute (``limits.session_rate_per_key_per_min``), counted in this process (:class:`MemoryLimits`)
or, with ``[cluster] redis_url``, in Redis for every replica at once (:class:`RedisLimits`).

Both count a session from :meth:`KeyLimits.acquire` (which refuses it, atomically, when its key
is at a limit) until :meth:`KeyLimits.release`. In Redis a session holds a *lease*: a member of
the key's sorted set whose score is when it expires. The replica renews its leases every third
of ``cluster.lease_s``; the leases of a replica that died expire by themselves, so a crash frees
its slots within ``lease_s``. Releasing is done in the background (a session's teardown never
waits for Redis); a lease that could not be removed expires the same way.

Redis unreachable (or slower than ``cluster.redis_timeout_s``): sessions with an API key are
refused (503 ``limits_unavailable``: fail closed, so a limit is never exceeded unseen); sessions
without a key are not counted and go on; live sessions are not touched. One log line when Redis
goes away and one when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from gateway.config import Config
from gateway.core.errors import ErrorCode
from gateway.core.ratelimit import TokenBucket

__all__ = ["KeyLimits", "MemoryLimits", "RedisLimits", "Refusal", "key_limits"]

log = logging.getLogger(__name__)

_RELEASE_QUEUE: Final = 4096  # leases waiting to be removed from Redis (more: left to expire)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a session is refused: an HTTP status (before the upgrade), a code, a reason."""

    status: int
    code: ErrorCode
    reason: str


class KeyLimits(Protocol):
    """Counts the sessions of each API key; ``holder`` is the session counted."""

    async def acquire(self, key_id: str, holder: object) -> Refusal | None:
        """Count ``holder`` against ``key_id``, or say why not. Cancel-safe: a cancelled
        acquire counts nothing that is not released with ``holder``."""
        ...

    def release(self, holder: object) -> None:
        """``holder`` ended (nothing if it holds nothing)."""
        ...

    def live(self, key_id: str) -> int:
        """Sessions of ``key_id`` counted by this process."""
        ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


def _cap_refusal(limit: int) -> Refusal:
    return Refusal(429, ErrorCode.TOO_MANY_SESSIONS,
                   f"this API key has its maximum of {limit} live sessions")  # fmt: skip


def _rate_refusal(per_min: float) -> Refusal:
    return Refusal(429, ErrorCode.RATE_LIMITED,
                   f"this API key opens more than {per_min:g} sessions a minute")  # fmt: skip


class MemoryLimits:
    """The per-key limits of one process (no cluster)."""

    def __init__(
        self,
        max_per_key: int,
        rate_per_min: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_per_key
        self._rate_per_min = rate_per_min
        self._burst = burst
        self._clock = clock
        self._live: Counter[str] = Counter()
        self._holders: dict[object, str] = {}
        self._buckets: dict[str, TokenBucket] = {}

    async def acquire(self, key_id: str, holder: object) -> Refusal | None:
        if self._live[key_id] >= self._max:
            return _cap_refusal(self._max)
        if self._rate_per_min:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = TokenBucket(self._rate_per_min / 60, self._burst)
            if not bucket.take(self._clock()):
                return _rate_refusal(self._rate_per_min)
        self._live[key_id] += 1
        self._holders[holder] = key_id
        return None

    def release(self, holder: object) -> None:
        key_id = self._holders.pop(holder, None)
        if key_id is not None:
            self._live[key_id] -= 1

    def live(self, key_id: str) -> int:
        return self._live[key_id]

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


# KEYS: the key's leases (sorted set: member -> expiry in ms), its rate bucket (hash).
# ARGV: member, lease ms, cap, rate per ms (0: none), burst. Redis' own clock, so replicas agree.
_ACQUIRE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 'cap' end
local rate = tonumber(ARGV[4])
if rate > 0 then
  local burst = tonumber(ARGV[5])
  local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'at')
  local tokens = tonumber(bucket[1]) or burst
  local at = tonumber(bucket[2]) or now
  tokens = math.min(burst, tokens + (now - at) * rate)
  if tokens < 1 then return 'rate' end
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - 1), 'at', now)
  redis.call('PEXPIRE', KEYS[2], math.ceil(burst / rate) + 1000)
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * lease)
return 'ok'
"""

# KEYS: the key's leases. ARGV: lease ms, then the members to renew (added again if they
# expired meanwhile: they are live sessions).
_RENEW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + lease, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], 2 * lease)
return #ARGV - 1
"""


@dataclass(frozen=True, slots=True)
class _Lease:
    key_id: str
    member: str


class RedisLimits:
    """The per-key limits of every replica that shares the Redis at ``cluster.redis_url``."""

    def __init__(self, config: Config) -> None:
        from redis.asyncio import Redis  # only a cluster needs the client

        cluster, limits = config.cluster, config.limits
        self._timeout_s = cluster.redis_timeout_s
        self._lease_ms = round(cluster.lease_s * 1000)
        self._prefix = cluster.key_prefix
        self._max = limits.max_sessions_per_key
        self._rate_per_min = limits.session_rate_per_key_per_min
        self._burst = limits.session_burst_per_key
        self._redis = Redis.from_url(
            cluster.redis_url,
            socket_timeout=cluster.redis_timeout_s,
            socket_connect_timeout=cluster.redis_timeout_s,
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._held: dict[object, _Lease] = {}
        self._released: asyncio.Queue[_Lease] = asyncio.Queue(_RELEASE_QUEUE)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reachable = True

    async def acquire(self, key_id: str, holder: object) -> Refusal | None:
        lease = _Lease(key_id, f"{self.replica}:{uuid.uuid4().hex[:12]}")
        rate_per_ms = self._rate_per_min / 60_000
        try:
            async with asyncio.timeout(self._timeout_s):
                verdict = await self._acquire(
                    keys=[self._sessions_key(key_id), f"{self._prefix}rate:{key_id}"],
                    args=[lease.member, self._lease_ms, self._max, repr(rate_per_ms), self._burst],
                )
        except asyncio.CancelledError:
            self._forget(lease)  # the script may have run: remove the lease it may have added
            raise
        except Exception as exc:  # redis-py raises its own errors, OSError and TimeoutError
            self._forget(lease)
            self._unreachable(exc)
            reason = "the shared limits store cannot be reached; try again shortly"
            return Refusal(503, ErrorCode.LIMITS_UNAVAILABLE, reason)
        self._reached()
        verdict = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
        if verdict == "cap":
            return _cap_refusal(self._max)
        if verdict == "rate":
            return _rate_refusal(self._rate_per_min)
        self._held[holder] = lease
        return None

    def release(self, holder: object) -> None:
        lease = self._held.pop(holder, None)
        if lease is not None:
            self._forget(lease)

    def live(self, key_id: str) -> int:
        return sum(1 for lease in self._held.values() if lease.key_id == key_id)

    async def count(self, key_id: str) -> int:
        """Live leases of ``key_id`` in Redis, every replica's (raises if Redis is away)."""
        async with asyncio.timeout(self._timeout_s):
            now_s, micros = await self._redis.time()
            now_ms = now_s * 1000 + micros // 1000
            return int(await self._redis.zcount(self._sessions_key(key_id), now_ms, "+inf"))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._maintain(), name="redis-leases")

    async def aclose(self) -> None:
        """Stop renewing; remove the leases still held and those released (best effort)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for holder in list(self._held):
            self.release(holder)
        with contextlib.suppress(Exception):
            await self._remove_released()
        await self._redis.aclose()

    def _sessions_key(self, key_id: str) -> str:
        return f"{self._prefix}sessions:{key_id}"

    def _forget(self, lease: _Lease) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # beyond the queue: the lease expires
            self._released.put_nowait(lease)
        self._wake.set()

    async def _maintain(self) -> None:
        """Remove released leases soon and renew the live ones every third of the lease."""
        interval_s = self._lease_ms / 3000
        renew_at = time.monotonic() + interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, renew_at - time.monotonic())):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._remove_released()
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + interval_s
                    await self._renew_held()
            except Exception as exc:
                self._unreachable(exc)
            else:
                self._reached()

    async def _remove_released(self) -> None:
        if self._released.empty():
            return
        leases = []
        while not self._released.empty():
            leases.append(self._released.get_nowait())
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for lease in leases:
                        pipe.zrem(self._sessions_key(lease.key_id), lease.member)
                    await pipe.execute()
        except BaseException:
            for lease in leases:  # tried again next time (or they expire)
                with contextlib.suppress(asyncio.QueueFull):
                    self._released.put_nowait(lease)
            raise

    async def _renew_held(self) -> None:
        by_key: dict[str, list[str]] = {}
        for lease in self._held.values():
            by_key.setdefault(lease.key_id, []).append(lease.member)
        if not by_key:
            return
        async with asyncio.timeout(self._timeout_s):
            for key_id, members in by_key.items():
                await self._renew(
                    keys=[self._sessions_key(key_id)], args=[self._lease_ms, *members]
                )

    def _unreachable(self, exc: BaseException) -> None:
        if self.reachable:
            log.error(
                "Redis (cluster.redis_url) is unreachable: %s; sessions with an API key "
                "are refused until it answers (fail closed)",
                exc or type(exc).__name__,
            )
        self.reachable = False

    def _reached(self) -> None:
        if not self.reachable:
            log.warning("Redis (cluster.redis_url) answers again; per-key limits are shared")
        self.reachable = True


def key_limits(config: Config) -> KeyLimits:
    """The per-key limits ``config`` asks for: in Redis with ``cluster.redis_url``, else here."""
    if config.cluster.redis_url:
        return RedisLimits(config)
    limits = config.limits
    return MemoryLimits(limits.max_sessions_per_key, limits.session_rate_per_key_per_min,
                        limits.session_burst_per_key)  # fmt: skip
