"""Retention: at most ITERATION_RETENTION full incidence sets per closing; stale job results.

A full incidence set is an iteration's result document (iteration_results) and its drill-down
lines (incidence_lines), the bulk of the database. Older iterations keep their history row
(status, summary, diff); the iteration a snapshot serves is never purged, whatever its rank.
"""

from __future__ import annotations

import logging
import re

import sqlalchemy as sa
from arq.constants import result_key_prefix
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.postgres.tables import incidence_lines, iteration_results, iterations, snapshots

logger = logging.getLogger(__name__)

_GLOB_SPECIAL = re.compile(r"[*?\[\]\\]")  # escaped in a SCAN MATCH pattern

# Iterations purged per transaction: short transactions, no long lock on a busy closing.
BATCH_ITERATIONS = 50


def _purgeable(keep: int, limit: int) -> sa.Select[tuple[object]]:
    """Ids of stored results beyond the newest `keep` of their closing, none of them served."""
    ranked = (
        sa.select(
            iteration_results.c.iteration_id,
            sa.func.row_number()
            .over(partition_by=iterations.c.closing_id, order_by=iterations.c.number.desc())
            .label("rank"),
        )
        .join(iterations, iterations.c.id == iteration_results.c.iteration_id)
        .subquery()
    )
    return (
        sa.select(ranked.c.iteration_id)
        .where(
            ranked.c.rank > keep,
            ~sa.exists().where(snapshots.c.iteration_id == ranked.c.iteration_id),
        )
        .limit(limit)
    )


async def purge_old_results(engine: AsyncEngine, keep: int, batch: int = BATCH_ITERATIONS) -> int:
    """Delete the result sets beyond the newest `keep` per closing; returns how many went."""
    if keep < 1:
        raise ValueError("retention must keep at least one result set per closing")
    purged = 0
    while True:
        async with engine.begin() as conn:
            ids = (await conn.execute(_purgeable(keep, batch))).scalars().all()
            if not ids:
                break
            # Re-checked at delete time: a snapshot that moved onto one of them keeps it.
            served = sa.exists().where(snapshots.c.iteration_id == iteration_results.c.iteration_id)
            deleted = (
                (
                    await conn.execute(
                        sa.delete(iteration_results)
                        .where(iteration_results.c.iteration_id.in_(ids), ~served)
                        .returning(iteration_results.c.iteration_id)
                    )
                )
                .scalars()
                .all()
            )
            if deleted:
                await conn.execute(
                    sa.delete(incidence_lines).where(incidence_lines.c.iteration_id.in_(deleted))
                )
            purged += len(deleted)
        if len(ids) < batch or not deleted:
            break
    if purged:
        logger.info("retention purged the incidence sets of %d iteration(s)", purged)
    return purged


async def purge_job_results(redis: Redis, prefix: str) -> int:
    """Delete arq result keys of this deployment's jobs; returns how many were removed."""
    # Results live in Postgres (the worker keeps none: keep_result=0), so an arq result key of
    # ours is a leftover, e.g. of an older version; arq would refuse to queue that job id again.
    removed = 0
    batch: list[bytes | str] = []
    escaped = _GLOB_SPECIAL.sub(r"\\\g<0>", prefix)
    pattern = f"{result_key_prefix}{escaped}:*"
    async for key in redis.scan_iter(match=pattern, count=500):
        batch.append(key)
        if len(batch) >= 500:
            removed += await redis.delete(*batch)
            batch.clear()
    if batch:
        removed += await redis.delete(*batch)
    if removed:
        logger.info("purged %d finished job result(s) from Redis", removed)
    return removed
