"""arq, the job queue: enqueueing iteration jobs (idempotent thanks to deterministic job ids),
and a worker that outlives Redis outages."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

PROCESS_ITERATION = "process_iteration"
PARSE_AHEAD = "parse_upload_ahead"
# Queueing a parse ahead is a head start, not worth holding an upload up for.
PARSE_AHEAD_ENQUEUE_SECONDS = 0.5


def iteration_job_id(
    prefix: str, iteration_id: uuid.UUID, attempt: int, handoff_after: int | None = None
) -> str:
    """One job id per (iteration, attempt): arq refuses a second job with the same id, so
    re-enqueueing the same attempt (sweeper, retries) never runs it twice in parallel. A
    hand-off from the iteration that just ended gets an id of its own (see enqueue_by_id)."""
    job_id = f"{prefix}:iteration:{iteration_id}:{attempt}"
    return job_id if handoff_after is None else f"{job_id}:after-{handoff_after}"


async def enqueue_iteration(
    redis: ArqRedis,
    prefix: str,
    iteration_id: uuid.UUID,
    attempt: int,
    handoff_after: int | None = None,
) -> bool:
    """Queue the iteration's job; False when Redis is unreachable (the sweeper will retry).

    arq stores the job with a TTL (a day), which would make it evictable under the `volatile-*`
    maxmemory policies that keep Redis's memory bounded: its TTL is removed, so only cache
    entries are ever evicted, never a queued job (arq deletes the job once it has run)."""
    job_id = iteration_job_id(prefix, iteration_id, attempt, handoff_after)
    try:
        await redis.enqueue_job(PROCESS_ITERATION, str(iteration_id), _job_id=job_id)
        await redis.persist(job_key_prefix + job_id)
    except Exception as exc:
        logger.warning("could not enqueue iteration %s: %s", iteration_id, type(exc).__name__)
        return False
    return True


async def enqueue_parse_ahead(
    redis: ArqRedis, prefix: str, ledger_id: uuid.UUID, filename: str | None, options: Any
) -> None:
    """Queue the parse of an upload that is still arriving; best effort (see parse_ahead.py):
    without it, the iteration's run parses the file. Unlike an iteration's job it may be
    evicted with the cache under memory pressure: nothing is lost then either."""
    job_id = f"{prefix}:parse-ahead:{ledger_id}"
    enqueue = redis.enqueue_job(PARSE_AHEAD, str(ledger_id), filename, options, _job_id=job_id)
    try:
        await asyncio.wait_for(enqueue, PARSE_AHEAD_ENQUEUE_SECONDS)
    except Exception as exc:
        logger.info(
            "could not queue the parse ahead of ledger %s: %s", ledger_id, type(exc).__name__
        )


# Redis unreachable (down, restarting, still loading its data: BusyLoadingError is one of these);
# redis-py wraps the socket's own errors in these.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
REDIS_DOWN_PAUSE_SECONDS = 1.0


class ResilientWorker(Worker):
    """arq's Worker, but a Redis outage pauses it instead of ending the process.

    arq's loop has no retry: one failed poll (queue read, job result, cron, health record)
    raises out of `main()` and the worker exits, abandoning its running jobs, on every Redis
    restart (and `ledger-incidences dev` stops with it). arq offers no hook for this, so the
    public `main()` is run again after a pause; the startup hook runs only the first time.
    Running jobs go on meanwhile (they need Postgres, not the queue), and jobs Redis lost are
    queued again by the sweeper.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._started = False
        self._redis_down_since: float | None = None
        self._startup = self.on_startup
        self.on_startup = self._start_once

    async def _start_once(self, ctx: dict[str, Any]) -> None:
        """arq's startup hook, run once; on a restarted main() it means Redis answers again."""
        if self._redis_down_since is not None:
            down = time.monotonic() - self._redis_down_since
            logger.warning("worker: Redis answers again after %.1f s", down)
            self._redis_down_since = None
        if not self._started and self._startup is not None:
            await self._startup(ctx)
        self._started = True

    async def main(self) -> None:
        """arq's main loop, started again after a pause whenever Redis is unreachable."""
        while True:
            try:
                await super().main()
                return
            except REDIS_DOWN as exc:
                if self._redis_down_since is None:
                    self._redis_down_since = time.monotonic()
                    name = type(exc).__name__
                    logger.warning("worker: Redis unreachable (%s); waiting for it", name)
                await asyncio.sleep(REDIS_DOWN_PAUSE_SECONDS)
