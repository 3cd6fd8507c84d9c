"""Job metrics across processes: workers add to Redis hashes, the API reads them.

The worker cannot expose its own counters to the API's /metrics, and the job counts must add
up over every worker, so each finished job increments fields of one hash (/metrics renders
it) and of its minute's hash (/health's throughput: the last few minutes, whoever asks). A
metrics write is best effort: Redis trouble costs a data point, never a job.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from redis.asyncio import Redis

from app.adapters.postgres.tables import iterations
from app.adapters.redis import keys
from app.metrics import PROCESSING_BUCKETS
from app.resources import Resources

logger = logging.getLogger(__name__)

# Throughput is measured over this many minutes; a minute's hash outlives them, then expires.
THROUGHPUT_MINUTES = 5
_MINUTE_TTL_SECONDS = 2 * THROUGHPUT_MINUTES * 60

# What processing.run_iteration returns, by prefix, mapped onto the bounded outcome label.
_OUTCOME_PREFIXES = (
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("abandoned", "abandoned"),
    ("interrupted", "interrupted"),
    ("waiting", "deferred"),
    ("nothing to do", "skipped"),
)


def outcome_label(result: str | None) -> str:
    """The metric label of a job's result string (None: the job raised)."""
    if result is None:
        return "error"
    for prefix, label in _OUTCOME_PREFIXES:
        if result.startswith(prefix):
            return label
    return "error"


async def record_job(
    resources: Resources, iteration_id: uuid.UUID, result: str | None, seconds: float
) -> None:
    """Count a finished job; a succeeded one also adds its movements and duration."""
    label = outcome_label(result)
    movements = 0
    try:
        if label == "succeeded":
            async with resources.engine.connect() as conn:
                movements = int(
                    await conn.scalar(
                        sa.select(iterations.c.movements_processed).where(
                            iterations.c.id == iteration_id
                        )
                    )
                    or 0
                )
        await add(resources.redis, resources.settings.redis_key_prefix, label, seconds, movements)
    except Exception as exc:
        logger.warning("could not record job metrics: %s", type(exc).__name__)


async def add(
    redis: Redis,
    prefix: str,
    outcome: str,
    seconds: float,
    movements: int,
    now: float | None = None,
) -> None:
    """Increment the counters of one job finished at `now` (unix seconds; durations, movements
    and the minute's throughput only for succeeded jobs)."""
    key = keys.job_stats(prefix)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hincrby(key, f"jobs:{outcome}", 1)
        if outcome == "succeeded":
            pipe.hincrby(key, "movements", movements)
            pipe.hincrby(key, "duration:count", 1)
            pipe.hincrbyfloat(key, "duration:sum", seconds)
            for le in PROCESSING_BUCKETS:
                if seconds <= le:
                    pipe.hincrby(key, f"duration:le:{le}", 1)
            minute = keys.job_minute(prefix, int((time.time() if now is None else now) // 60))
            pipe.hincrby(minute, "iterations", 1)
            pipe.hincrby(minute, "movements", movements)
            pipe.expire(minute, _MINUTE_TTL_SECONDS)
        await pipe.execute()


@dataclass(frozen=True)
class Throughput:
    """Succeeded iterations, and the movements they ran, per minute (over every worker)."""

    movements_per_minute: float
    iterations_per_minute: float


async def throughput(redis: Redis, prefix: str, now: float | None = None) -> Throughput:
    """The rate over the last THROUGHPUT_MINUTES minutes up to `now` (unix seconds)."""
    now = time.time() if now is None else now
    current = int(now // 60)
    async with redis.pipeline(transaction=False) as pipe:
        for minute in range(current - THROUGHPUT_MINUTES + 1, current + 1):
            pipe.hmget(keys.job_minute(prefix, minute), ["movements", "iterations"])
        buckets: list[list[bytes | None]] = await pipe.execute()
    movements = sum(int(bucket[0] or 0) for bucket in buckets)
    iterations = sum(int(bucket[1] or 0) for bucket in buckets)
    # The current minute has only begun: divide by the time the buckets really cover.
    minutes = THROUGHPUT_MINUTES - 1 + (now % 60) / 60
    return Throughput(round(movements / minutes, 1), round(iterations / minutes, 2))


async def read(redis: Redis, prefix: str) -> dict[str, float]:
    """Every counter of the hash, as numbers."""
    raw: dict[bytes | str, bytes | str] = await redis.hgetall(keys.job_stats(prefix))  # type: ignore[misc]
    return {_text(k): float(_text(v)) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
