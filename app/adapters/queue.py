"""Enqueueing iteration jobs on arq: idempotent thanks to deterministic job ids."""

from __future__ import annotations

import logging
import uuid

from arq.connections import ArqRedis

logger = logging.getLogger(__name__)

PROCESS_ITERATION = "process_iteration"


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
    """Queue the iteration's job; False when Redis is unreachable (the sweeper will retry)."""
    try:
        await redis.enqueue_job(
            PROCESS_ITERATION,
            str(iteration_id),
            _job_id=iteration_job_id(prefix, iteration_id, attempt, handoff_after),
        )
    except Exception as exc:
        logger.warning("could not enqueue iteration %s: %s", iteration_id, type(exc).__name__)
        return False
    return True
