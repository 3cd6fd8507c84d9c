"""Job metrics across processes: workers add to a Redis hash, /metrics reads it at scrape time.

The worker cannot expose its own counters to the API's /metrics, and the job counts must add
up over every worker, so each finished job increments fields of one hash. A metrics write is
best effort: Redis trouble costs a data point, never a job.
"""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa
from redis.asyncio import Redis

from app.adapters.postgres.tables import iterations
from app.adapters.redis import keys
from app.metrics import PROCESSING_BUCKETS
from app.resources import Resources

logger = logging.getLogger(__name__)

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


async def add(redis: Redis, prefix: str, outcome: str, seconds: float, movements: int) -> None:
    """Increment the counters of one job (durations and movements only for succeeded jobs)."""
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
        await pipe.execute()


async def read(redis: Redis, prefix: str) -> dict[str, float]:
    """Every counter of the hash, as numbers."""
    raw: dict[bytes | str, bytes | str] = await redis.hgetall(keys.job_stats(prefix))  # type: ignore[misc]
    return {_text(k): float(_text(v)) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
