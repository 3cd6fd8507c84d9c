"""Exact sliding-window rate limit: concurrent requests are checked together, by one atomic
Lua script call (EVALSHA) in one Redis round trip, on a connection of the limiter's own."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError

from app.adapters.redis import keys
from app.adapters.redis.deadline import redis_deadline
from app.settings import RatePolicy

# A batch's script call gives up after this (more while the event loop runs behind): the limiter
# then fails open for those requests.
CHECK_SECONDS = 0.5
SCRIPT = (Path(__file__).parent / "sliding_window.lua").read_text()
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

# The limiter's connection, unused for this long, is checked before its next call.
IDLE_CHECK_SECONDS = 1.0

# Unique per process and per call, so two replicas admitting in the same microsecond never
# write the same sorted-set member (which would count two requests as one).
_PROCESS = secrets.token_hex(3)
_SEQUENCE = itertools.count()


@dataclass(frozen=True)
class Decision:
    """The limiter's answer for one request."""

    admitted: bool
    limit: int
    remaining: int
    reset_seconds: int  # integer seconds until one more request is allowed (0: right now)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """X-RateLimit-* as raw ASGI headers."""
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_seconds).encode()),
        ]


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """One request to count against one subject's window: the script's KEY and ARGV."""

    key: str
    policy: RatePolicy
    member_suffix: str

    def decision(self, admitted: int, remaining: int, wait_us: int) -> Decision:
        """Read the script's answer for this request."""
        # Rounded up, so that waiting X-RateLimit-Reset seconds is always enough.
        reset = -(-wait_us // 1_000_000) if wait_us > 0 else 0
        return Decision(bool(admitted), self.policy.limit, max(remaining, 0), reset)


def window_check(prefix: str, policy_name: str, policy: RatePolicy, subject: str) -> WindowCheck:
    """The check of one request by `subject` under the named policy."""
    suffix = f"-{_PROCESS}{next(_SEQUENCE):x}"
    return WindowCheck(keys.rate_limit(prefix, policy_name, subject), policy, suffix)


async def check_all(
    connection: AbstractConnection, checks: Sequence[WindowCheck]
) -> list[Decision]:
    """Count every request of the batch, in order, in one script call (EVAL again if Redis
    has forgotten the script, as after a restart or SCRIPT FLUSH)."""
    args: list[Any] = [len(checks), *(check.key for check in checks)]
    for check in checks:
        args += (check.policy.limit, check.policy.window_seconds * 1_000_000, check.member_suffix)
    try:
        reply = await _call(connection, "EVALSHA", SCRIPT_SHA, *args)
    except NoScriptError:
        reply = await _call(connection, "EVAL", SCRIPT, *args)
    return [
        check.decision(int(reply[3 * i]), int(reply[3 * i + 1]), int(reply[3 * i + 2]))
        for i, check in enumerate(checks)
    ]


async def _call(connection: AbstractConnection, *command: Any) -> Any:
    """One command on the connection, straight: no pool, no retries (a failed check fails
    open). Cut short (a timeout, a lost connection), the connection is dropped, so that an
    answer still on its way is never read as the next one's; the next call reconnects."""
    try:
        await connection.send_command(*command)
        return await connection.read_response()
    except NoScriptError:
        raise  # an answer, read whole: the connection is in step
    except BaseException:
        await connection.disconnect(nowait=True)
        raise


class CheckBatcher:
    """Counts concurrent requests in one round trip: at most one script call is in flight, and
    the checks queued meanwhile go together in the next one (each batch is atomic).

    Under load this divides the limiter's Redis round trips by the concurrency, which is most
    of its cost per request; alone, a request waits one tick at most. The calls go over one
    connection taken from the client's pool for good (closed with it): a pooled command costs
    about twice as much CPU, most of it in the pool's health check of each connection it lends.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pending: list[tuple[WindowCheck, asyncio.Future[Decision]]] = []
        self._sending = False
        self._connection: AbstractConnection | None = None
        self._used_at = 0.0

    async def check(self, check: WindowCheck) -> Decision:
        """Count one request, sharing the next script call with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        self._pending.append((check, future))
        if not self._sending:
            self._sending = True
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        task = asyncio.ensure_future(self._drain())
        _IN_FLIGHT.add(task)
        task.add_done_callback(_IN_FLIGHT.discard)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._send(batch)
        finally:
            self._sending = False

    async def _send(self, batch: list[tuple[WindowCheck, asyncio.Future[Decision]]]) -> None:
        try:
            async with redis_deadline(CHECK_SECONDS):
                connection = await self._ready_connection()
                decisions = await check_all(connection, [check for check, _ in batch])
                self._used_at = time.monotonic()
        except Exception as exc:  # Redis unreachable: every waiting request fails open
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), decision in zip(batch, decisions, strict=True):
            if not future.done():
                future.set_result(decision)

    async def _ready_connection(self) -> AbstractConnection:
        """The limiter's connection; after a quiet spell, checked first as the pool checks the
        ones it lends (Redis may have closed it: a restart): a closed one is reopened."""
        pool = self.redis.connection_pool
        if self._connection is None:
            self._connection = await pool.get_connection()
        elif time.monotonic() - self._used_at > IDLE_CHECK_SECONDS:
            await pool.ensure_connection(self._connection)
        return self._connection


# Strong references to the script calls in flight (the event loop keeps only weak ones).
_IN_FLIGHT: set[asyncio.Future[None]] = set()
