"""One iteration, end to end: claim → movements → rules → diff → publish (or fail, or retry)."""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_chain, wait_fixed

from app.adapters.outages import rolled_back, unavailable
from app.domain.errors import DomainError, TooManyIncidences
from app.logging import request_id_var
from app.memory import gc_paused
from app.resources import Resources
from app.services.iterations import claims
from app.services.iterations import publish as snapshots
from app.services.iterations.claims import MAX_ATTEMPTS, Abandoned, Busy, Claim, LeaseLost
from app.services.iterations.evaluate import evaluate_iteration, load_reference
from app.services.iterations.movements import load_movements
from app.services.iterations.request import enqueue_by_id
from app.services.snapshot_cache import writes as cache_writes

logger = logging.getLogger(__name__)

# Pauses before each try to release the claim of an iteration whose connection was lost: the
# first at once (the pool replaces a dead connection), the last some 4 s after the loss.
RELEASE_RETRY_DELAYS = (0.0, 0.25, 0.5, 1.0, 2.0)


async def run_iteration(resources: Resources, iteration_id: uuid.UUID) -> str:
    """Process the iteration if this job can claim it; returns what happened, for arq's log."""
    engine = resources.engine
    lease_seconds = resources.settings.iteration_lease_seconds
    try:
        claimed = await claims.claim(engine, iteration_id, lease_seconds)
    except Busy:
        # The running iteration of this closing queues this one when it ends.
        return "waiting: another iteration of the closing is running"
    except Abandoned as abandoned:
        await _hand_over(resources, abandoned.closing_id)
        return f"failed: no attempt left after {MAX_ATTEMPTS}"
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
    except LeaseLost:
        # Stopped at once: another job has taken the iteration over (then nothing is left to
        # do), or the lease could not be renewed (Postgres out of reach): then it is given up
        # to be run again.
        return await _retry_later(resources, claimed, "its lease was lost", log)
    except Exception as exc:
        if unavailable(exc):
            # Not the iteration's fault: it is run again, like one whose worker died. Still
            # running, so the closing's queued iteration (if any) waits for the retry's end.
            # The type only: a message may carry a host, a user or a connection string.
            what = "rolled back by Postgres" if rolled_back(exc) else "Postgres or Redis down"
            reason = f"{what} ({type(exc).__name__})"
            return await _retry_later(resources, claimed, reason, log)
        logger.exception("iteration %s failed", iteration_id, extra=log)
        await claims.fail(engine, claimed, _problem(exc))
        outcome = "failed"
    logger.info("iteration %s %s", iteration_id, outcome, extra=log)
    await _hand_over(resources, claimed.closing_id)
    return outcome


async def _hand_over(resources: Resources, closing_id: uuid.UUID) -> None:
    """Queue the job of the closing's iteration that waited for the one that just ended."""
    waiting = await claims.next_queued(resources.engine, closing_id)
    if waiting is not None:
        await enqueue_by_id(resources, *waiting)


async def _process(resources: Resources, claimed: Claim) -> str:
    started = time.perf_counter()
    # The reference data as it is when the run starts (SPEC §2): a change made while the ledger
    # is parsed queues the next iteration, whose diff then shows what that change did.
    reference = await load_reference(resources.engine, claimed.closing_id)
    with tempfile.TemporaryDirectory(prefix="ledger-iteration-") as tmp:
        loaded = await load_movements(resources.engine, claimed, Path(tmp))
        loaded_at = time.perf_counter()
        with gc_paused():  # thousands of incidences and their JSON shapes are built here
            result = await evaluate_iteration(
                resources.engine, claimed, loaded, reference, resources.settings.max_incidences
            )
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
        entry = (published.revision, published.content_hash, published.body)
        await cache_writes.cache_published(resources, claimed.closing_id, *entry)
    logger.info(
        "iteration %s timings: movements %.0f ms, evaluation %.0f ms, publish %.0f ms",
        claimed.iteration_id,
        (loaded_at - started) * 1000,
        (evaluated_at - loaded_at) * 1000,
        (time.perf_counter() - evaluated_at) * 1000,
        extra={"request_id": claimed.request_id},
    )
    return "succeeded" if published else "abandoned: the claim was taken over"


async def _retry_later(
    resources: Resources, claimed: Claim, reason: str, log: dict[str, Any]
) -> str:
    """Postgres or Redis was lost mid-run (restart, failover, a terminated backend), or the
    lease was: give the claim up, if still ours, and queue a job to take it over at once,
    rather than let an accepted upload end `failed`. The takeover is a new attempt, so
    MAX_ATTEMPTS still bounds an error that only looks transient (a query that crashes the
    server each time).

    Releasing needs Postgres: it is tried for a few seconds (a bounce or a failover is over by
    then). If it stays out of reach, the claim's lease runs out, as a dead worker's does, and the
    sweeper queues the iteration again; this job must not wait that long in a worker's slot.
    """
    iteration_id = claimed.iteration_id
    logger.warning(
        "iteration %s interrupted: %s; it will be retried", iteration_id, reason, extra=log
    )
    # The lease loop has stopped (its `async with` is over): nothing renews the claim anymore.
    retrying = AsyncRetrying(
        retry=retry_if_exception(unavailable),
        wait=wait_chain(*(wait_fixed(delay) for delay in RELEASE_RETRY_DELAYS[1:])),
        stop=stop_after_attempt(len(RELEASE_RETRY_DELAYS)),
        reraise=True,
    )
    try:
        released: bool = await retrying(claims.release, resources.engine, claimed)
    except Exception as retry_exc:
        if not unavailable(retry_exc):
            raise
        logger.warning(
            "iteration %s: Postgres still unreachable; the sweeper retries it once its lease "
            "expires",
            iteration_id,
            extra=log,
        )
        return "interrupted: left to the sweeper"
    if not released:  # its lease ran out and another job took it over, or it committed
        return "abandoned: the claim was no longer ours"
    # The next attempt's job id (the sweeper would choose the same): this job's id is the
    # previous attempt's, and arq refuses a second job under an id it still holds.
    await enqueue_by_id(resources, iteration_id, claimed.attempt)
    return "interrupted: queued again"


def _problem(exc: Exception) -> dict[str, Any]:
    """The problem-detail stored in a failed iteration's `error`."""
    if isinstance(exc, DomainError):
        detail = exc.detail
    else:  # internals stay in the log; the user learns that it failed and that we know
        detail = f"processing failed ({type(exc).__name__}); the previous snapshot is still served"
    too_many = isinstance(exc, TooManyIncidences)
    return {
        "type": "/problems/too-many-incidences" if too_many else "/problems/iteration-failed",
        "title": "Iteration failed",
        "status": 422 if isinstance(exc, DomainError) else 500,
        "detail": detail,
        "failed_at": datetime.now(UTC).isoformat(),
    }
