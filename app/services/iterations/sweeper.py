"""Find iterations whose job was lost and queue them again."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from app.adapters.postgres.tables import iterations
from app.adapters.queue import enqueue_iteration
from app.resources import Resources
from app.services.iterations.claims import lease_expired

logger = logging.getLogger(__name__)

# A queued iteration older than this without being picked up may have lost its job.
QUEUED_GRACE_SECONDS = 10


async def sweep(resources: Resources, queued_grace_seconds: float = QUEUED_GRACE_SECONDS) -> int:
    """Re-enqueue stranded iterations; returns how many jobs were (re)queued.

    Job ids are deterministic per attempt, so a job still waiting in arq is not duplicated.
    """
    async with resources.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(iterations.c.id, iterations.c.attempts).where(
                    sa.or_(
                        sa.and_(
                            iterations.c.status == "queued",
                            iterations.c.queued_at
                            < sa.func.now()
                            - sa.func.make_interval(0, 0, 0, 0, 0, 0, queued_grace_seconds),
                        ),
                        sa.and_(
                            iterations.c.status == "running",
                            lease_expired(resources.settings.iteration_lease_seconds),
                        ),
                    )
                )
            )
        ).all()
    queued = 0
    for row in rows:
        if await enqueue_iteration(
            resources.redis, resources.settings.redis_key_prefix, row.id, row.attempts
        ):
            queued += 1
    if rows:
        logger.info("sweeper found %d stranded iteration(s), queued %d", len(rows), queued)
    return queued
