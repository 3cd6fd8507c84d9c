"""Exact sliding-window rate limit in one atomic Redis round trip (a Lua script, by EVALSHA)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from app.adapters.redis import keys
from app.settings import RatePolicy

SCRIPT = (Path(__file__).parent / "sliding_window.lua").read_text()
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1

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


@dataclass(frozen=True)
class WindowCheck:
    """One request to count against one subject's window: the script's arguments."""

    key: str
    policy: RatePolicy
    member_suffix: str

    def args(self) -> tuple[Any, ...]:
        """numkeys, KEYS and ARGV, as EVAL and EVALSHA take them after the script."""
        window_us = self.policy.window_seconds * 1_000_000
        return (1, self.key, self.policy.limit, window_us, self.member_suffix)

    def decision(self, reply: Any) -> Decision:
        """Read the script's reply."""
        admitted, remaining, wait_us = (int(part) for part in reply)
        # Rounded up, so that waiting X-RateLimit-Reset seconds is always enough.
        reset = math.ceil(wait_us / 1_000_000) if wait_us > 0 else 0
        return Decision(bool(admitted), self.policy.limit, max(remaining, 0), reset)


def window_check(prefix: str, policy_name: str, policy: RatePolicy, subject: str) -> WindowCheck:
    """The check of one request by `subject` under the named policy."""
    suffix = f"-{_PROCESS}{next(_SEQUENCE):x}"
    return WindowCheck(keys.rate_limit(prefix, policy_name, subject), policy, suffix)


def queue_check(pipe: Pipeline, check: WindowCheck) -> None:
    """Add the check to a pipeline, so other commands can share its round trip; read its reply
    with `decision_from_reply` (run the pipeline with raise_on_error=False)."""
    pipe.execute_command("EVALSHA", SCRIPT_SHA, *check.args())


async def decision_from_reply(redis: Redis, check: WindowCheck, reply: Any) -> Decision:
    """The decision from a pipelined reply, loading the script if Redis had forgotten it."""
    if isinstance(reply, NoScriptError):
        reply = await redis.execute_command("EVAL", SCRIPT, *check.args())
    elif isinstance(reply, Exception):
        raise reply
    return check.decision(reply)


class CheckBatcher:
    """Counts concurrent requests in one round trip: every check queued during one event-loop
    tick goes to Redis in a single pipeline (each script call stays atomic on its own).

    Under load this divides the limiter's Redis round trips by the concurrency, which is most
    of its cost per request; alone, a request waits one tick at most.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pending: list[tuple[WindowCheck, asyncio.Future[Decision]]] = []

    async def check(self, check: WindowCheck) -> Decision:
        """Count one request, sharing the next pipeline with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((check, future))
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        _IN_FLIGHT.add(task)
        task.add_done_callback(_IN_FLIGHT.discard)

    async def _send(self, batch: list[tuple[WindowCheck, asyncio.Future[Decision]]]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for check, _ in batch:
                    queue_check(pipe, check)
                replies = await pipe.execute(raise_on_error=False)
            for (check, future), reply in zip(batch, replies, strict=True):
                if not future.done():
                    future.set_result(await decision_from_reply(self.redis, check, reply))
        except Exception as exc:  # Redis unreachable: every waiting request fails open
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)


# Strong references to the pipelines in flight (the event loop keeps only weak ones).
_IN_FLIGHT: set[asyncio.Future[None]] = set()
