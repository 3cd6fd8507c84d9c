"""Exact sliding-window rate limit in one atomic Redis round trip (a Lua script, by EVALSHA)."""

from __future__ import annotations

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


async def run_check(redis: Redis, check: WindowCheck) -> Decision:
    """Count one request: one EVALSHA, plus an EVAL only after Redis lost its script cache
    (a restart or SCRIPT FLUSH); EVAL caches the script again for everyone."""
    try:
        reply = await redis.execute_command("EVALSHA", SCRIPT_SHA, *check.args())
    except NoScriptError:
        reply = await redis.execute_command("EVAL", SCRIPT, *check.args())
    return check.decision(reply)
