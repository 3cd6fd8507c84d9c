"""Worker heartbeats: each live worker refreshes its score in one sorted set."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from app.adapters.redis import keys

HEARTBEAT_SECONDS = 5
# A worker is live if it beat within this many seconds (three missed beats).
LIVE_WITHIN_SECONDS = 3 * HEARTBEAT_SECONDS


async def beat(redis: Redis, prefix: str, worker_id: str) -> None:
    """Record that `worker_id` is alive now, and forget long-dead workers."""
    now = time.time()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(keys.workers(prefix), {worker_id: now})
        pipe.zremrangebyscore(keys.workers(prefix), "-inf", now - 3600)
        await pipe.execute()


async def forget(redis: Redis, prefix: str, worker_id: str) -> None:
    """Remove a worker that stops cleanly."""
    await redis.zrem(keys.workers(prefix), worker_id)


async def live_workers(redis: Redis, prefix: str) -> int:
    """How many workers beat recently."""
    return int(await redis.zcount(keys.workers(prefix), time.time() - LIVE_WITHIN_SECONDS, "+inf"))
