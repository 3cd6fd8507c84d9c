"""Running an iteration safely: claim it, keep a lease alive, fail or release it, hand over
to the next.

arq delivers jobs at least once, and a worker can die at any instruction. The database row is
the single source of truth: a job may only work on an iteration it claimed (status `running`,
its own attempt number), and a claim is only possible on a queued iteration or on a running
one whose lease (heartbeat) expired. The partial unique index on `status = 'running'` makes a
second running iteration of the same closing impossible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.postgres.tables import closings, iterations

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# Lease renewals per lease period: several renewals may fail before the lease is lost.
RENEWALS_PER_LEASE = 6


@dataclass
class Claim:
    """An iteration this job owns, and the progress it reports through its heartbeat."""

    iteration_id: uuid.UUID
    attempt: int
    closing_id: uuid.UUID
    number: int
    ledger_id: uuid.UUID
    request_id: str | None
    progress: float = 0.0
    movements_processed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def owned(self) -> Any:
        """SQL condition: the row is still this job's (nobody re-claimed it after a lease loss)."""
        return sa.and_(
            iterations.c.id == self.iteration_id,
            iterations.c.status == "running",
            iterations.c.attempts == self.attempt,
        )


class Busy(Exception):
    """Another iteration of the same closing is running; this one waits its turn."""


class LeaseLost(Exception):
    """The job no longer owns its iteration: another job took it over, or the lease could not
    be renewed for a whole lease period (after which another job may take it over)."""


class Abandoned(Exception):
    """The iteration was just ended `failed`: it had used up its MAX_ATTEMPTS attempts."""

    def __init__(self, closing_id: uuid.UUID) -> None:
        super().__init__(str(closing_id))
        self.closing_id = closing_id


def lease_expired(lease_seconds: float) -> Any:
    """SQL condition: the running iteration's lease was not renewed in time."""
    return iterations.c.heartbeat_at < sa.func.now() - sa.func.make_interval(
        0, 0, 0, 0, 0, 0, lease_seconds
    )


async def claim(engine: AsyncEngine, iteration_id: uuid.UUID, lease_seconds: float) -> Claim | None:
    """Take the iteration (None if finished or owned by a live job); Busy if the closing runs
    another one, Abandoned if it had no attempt left (it is failed then). The iteration reads
    the closing's current ledger as it starts."""
    claimable = sa.or_(
        iterations.c.status == "queued",
        sa.and_(iterations.c.status == "running", lease_expired(lease_seconds)),
    )
    current_ledger = (
        sa.select(closings.c.ledger_id)
        .where(closings.c.id == iterations.c.closing_id)
        .scalar_subquery()
    )
    try:
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.update(iterations)
                    .where(iterations.c.id == iteration_id, claimable)
                    .values(
                        status="running",
                        attempts=iterations.c.attempts + 1,
                        started_at=sa.func.now(),
                        heartbeat_at=sa.func.now(),
                        progress=0,
                        movements_processed=0,
                        ledger_id=current_ledger,
                        error=None,
                    )
                    .returning(
                        iterations.c.id,
                        iterations.c.attempts,
                        iterations.c.closing_id,
                        iterations.c.number,
                        iterations.c.ledger_id,
                        iterations.c.request_id,
                    )
                )
            ).first()
    except IntegrityError as exc:  # uq_iterations_one_running
        raise Busy(str(iteration_id)) from exc
    if row is None:
        return None
    claimed = Claim(row.id, row.attempts, row.closing_id, row.number, row.ledger_id, row.request_id)
    if claimed.attempt > MAX_ATTEMPTS:
        await fail(
            engine,
            claimed,
            {
                "type": "/problems/iteration-abandoned",
                "title": "Iteration abandoned",
                "status": 500,
                "detail": f"the worker stopped or lost Postgres during each of {MAX_ATTEMPTS} "
                "attempts; the previous snapshot is still served",
            },
        )
        raise Abandoned(claimed.closing_id)
    return claimed


async def beat(engine: AsyncEngine, claimed: Claim) -> bool:
    """Refresh the lease and publish progress; False when the claim is no longer this job's."""
    async with engine.begin() as conn:
        renewed = await conn.execute(
            sa.update(iterations)
            .where(claimed.owned())
            .values(
                heartbeat_at=sa.func.now(),
                progress=round(claimed.progress, 4),
                movements_processed=claimed.movements_processed,
            )
        )
    return renewed.rowcount == 1


@contextlib.asynccontextmanager
async def owned_transaction(engine: AsyncEngine, claimed: Claim) -> AsyncIterator[AsyncConnection]:
    """A transaction in which the claim is still this job's, and stays so until it commits
    (the iteration's row is locked against a takeover); LeaseLost, with nothing written, when
    it is not. Every write of a job goes through one."""
    async with engine.begin() as conn:
        held = await conn.scalar(
            sa.select(iterations.c.id).where(claimed.owned()).with_for_update(read=True)
        )
        if held is None:
            raise LeaseLost(f"iteration {claimed.iteration_id} attempt {claimed.attempt}")
        yield conn


async def _ended_by_this_job(engine: AsyncEngine, claimed: Claim) -> bool:
    """Whether the iteration is no longer running because this very attempt ended it."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(iterations.c.status, iterations.c.attempts).where(
                    iterations.c.id == claimed.iteration_id
                )
            )
        ).one()
    return row.attempts == claimed.attempt and row.status != "running"


@contextlib.asynccontextmanager
async def lease(engine: AsyncEngine, claimed: Claim, lease_seconds: float) -> AsyncIterator[None]:
    """Keep the claim's lease alive in the background while the block runs.

    When the lease is lost (another job took the iteration over, or no renewal went through
    for a whole lease, after which another job may have), the block is cancelled and LeaseLost
    raised: the job stops instead of working on for nothing."""
    scope = asyncio.timeout(None)  # expired by the renewal loop when the lease is lost
    lost = False

    async def renew() -> None:
        nonlocal lost
        renewed_at = time.monotonic()
        while True:
            await asyncio.sleep(lease_seconds / RENEWALS_PER_LEASE)
            try:
                if await beat(engine, claimed):
                    renewed_at = time.monotonic()
                    continue
                if await _ended_by_this_job(engine, claimed):
                    return  # it published or failed it: nothing left to keep
            except Exception as exc:  # a missed renewal is fine: a lease spans several
                logger.warning("iteration heartbeat failed: %s", type(exc).__name__)
                if time.monotonic() - renewed_at < lease_seconds:
                    continue
            lost = True
            scope.reschedule(asyncio.get_running_loop().time())
            return

    task = asyncio.create_task(renew())
    try:
        async with scope:
            yield
    except TimeoutError:
        if lost:
            raise LeaseLost(f"iteration {claimed.iteration_id} attempt {claimed.attempt}") from None
        raise
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def release(engine: AsyncEngine, claimed: Claim) -> bool:
    """Give the claim up at once, as if its worker had died and its lease had run out: the
    iteration stays `running` (so the closing stays busy and its queued iteration waits, as
    uq_iterations_one_queued needs: a second queued one could not be written), and the next
    job to `claim` it takes it over as a new attempt. False if the claim was no longer ours."""
    async with engine.begin() as conn:
        released = await conn.execute(
            sa.update(iterations)
            .where(claimed.owned())
            .values(heartbeat_at=sa.func.to_timestamp(0))  # expired, whatever the lease
        )
    return released.rowcount == 1


async def fail(engine: AsyncEngine, claimed: Claim, problem: dict[str, Any]) -> None:
    """End the iteration as failed, with a problem-detail error; the snapshot is untouched."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(iterations)
            .where(claimed.owned())
            .values(status="failed", finished_at=sa.func.now(), heartbeat_at=None, error=problem)
        )


async def next_queued(
    engine: AsyncEngine, closing_id: uuid.UUID
) -> tuple[uuid.UUID, int, int | None] | None:
    """The closing's queued iteration, which waited for the one that just ended, as the
    arguments of its hand-off job: (id, attempts, number of the latest finished iteration).

    The last item gives the hand-off its own job id (see iterations.enqueue_by_id): the waiting
    iteration's first job may still be in flight, having just found the closing busy.
    """
    latest_finished = (
        sa.select(sa.func.max(iterations.c.number))
        .where(
            iterations.c.closing_id == closing_id,
            iterations.c.status.in_(("succeeded", "failed")),
        )
        .scalar_subquery()
    )
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(
                    iterations.c.id, iterations.c.attempts, latest_finished.label("after")
                ).where(iterations.c.closing_id == closing_id, iterations.c.status == "queued")
            )
        ).first()
    return (row.id, row.attempts, row.after) if row else None
