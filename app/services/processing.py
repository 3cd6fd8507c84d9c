"""One iteration, end to end: claim → movements → rules → diff → publish (or fail)."""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.domain.errors import DomainError
from app.logging import request_id_var
from app.resources import Resources
from app.services import cache_writes, claims, snapshots
from app.services.claims import Busy, Claim
from app.services.evaluation import evaluate_iteration
from app.services.iterations import enqueue_by_id
from app.services.movements import load_movements

logger = logging.getLogger(__name__)


async def run_iteration(resources: Resources, iteration_id: uuid.UUID) -> str:
    """Process the iteration if this job can claim it; returns what happened, for arq's log."""
    engine = resources.engine
    lease_seconds = resources.settings.iteration_lease_seconds
    try:
        claimed = await claims.claim(engine, iteration_id, lease_seconds)
    except Busy:
        # The running iteration of this closing queues this one when it ends.
        return "waiting: another iteration of the closing is running"
    if claimed is None:
        return "nothing to do: finished, or owned by a live job"
    # Every log line of this job (its own task) carries the id of the request that queued it.
    request_id_var.set(claimed.request_id)
    log = {
        "iteration_id": str(iteration_id),
        "attempt": claimed.attempt,
        "request_id": claimed.request_id,
    }
    logger.info("iteration %s started (attempt %d)", iteration_id, claimed.attempt, extra=log)
    try:
        async with claims.lease(engine, claimed, lease_seconds):
            outcome = await _process(resources, claimed)
    except Exception as exc:
        logger.exception("iteration %s failed", iteration_id, extra=log)
        await claims.fail(engine, claimed, _problem(exc))
        outcome = "failed"
    logger.info("iteration %s %s", iteration_id, outcome, extra=log)
    waiting = await claims.next_queued(engine, claimed.closing_id)
    if waiting is not None:
        await enqueue_by_id(resources, *waiting)
    return outcome


async def _process(resources: Resources, claimed: Claim) -> str:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ledger-iteration-") as tmp:
        loaded = await load_movements(resources.engine, claimed, Path(tmp))
        loaded_at = time.perf_counter()
        result = await evaluate_iteration(resources.engine, claimed, loaded)
    evaluated_at = time.perf_counter()
    published = await snapshots.publish(
        resources.engine,
        claimed,
        document=result.document,
        content_hash=result.content_hash,
        lines=result.lines,
        summary=result.summary,
        diff=result.diff,
    )
    if published:  # committed: put it in Redis now, so the first read is already a hit
        await cache_writes.cache_published(resources, claimed, result.document, result.content_hash)
    logger.info(
        "iteration %s timings: movements %.0f ms, evaluation %.0f ms, publish %.0f ms",
        claimed.iteration_id,
        (loaded_at - started) * 1000,
        (evaluated_at - loaded_at) * 1000,
        (time.perf_counter() - evaluated_at) * 1000,
        extra={"request_id": claimed.request_id},
    )
    return "succeeded" if published else "abandoned: the claim was taken over"


def _problem(exc: Exception) -> dict[str, Any]:
    """The problem-detail stored in a failed iteration's `error`."""
    if isinstance(exc, DomainError):
        detail = exc.detail
    else:  # internals stay in the log; the user learns that it failed and that we know
        detail = f"processing failed ({type(exc).__name__}); the previous snapshot is still served"
    return {
        "type": "/problems/iteration-failed",
        "title": "Iteration failed",
        "status": 422 if isinstance(exc, DomainError) else 500,
        "detail": detail,
        "failed_at": datetime.now(UTC).isoformat(),
    }
