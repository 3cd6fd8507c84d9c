"""Iterations: requesting (with coalescing), reading, and queueing their jobs."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import closings, iterations
from app.adapters.queue import enqueue_iteration
from app.domain.errors import Conflict, NotFound
from app.resources import Resources

TRIGGERS = (
    "initial",
    "ledger_replaced",
    "manual",
    "document_types_updated",
    "classification_updated",
    "english_names_updated",
    "accounts_updated",
)

_PUBLIC = (
    iterations.c.id,
    iterations.c.closing_id,
    iterations.c.number,
    iterations.c.trigger,
    iterations.c.coalesced_triggers,
    iterations.c.status,
    iterations.c.progress,
    iterations.c.requested_by,
    iterations.c.notes,
    iterations.c.queued_at,
    iterations.c.started_at,
    iterations.c.finished_at,
    iterations.c.movements_processed,
    iterations.c.error,
    iterations.c.summary,
    iterations.c.attempts,
)


def to_resource(row: Any, *, with_diff: bool = False) -> dict[str, Any]:
    """The iteration as the API shows it (SPEC §6 fields)."""
    data = dict(row._mapping)
    started, finished = data.get("started_at"), data.get("finished_at")
    resource = {
        "id": data["id"],
        "closing_id": data["closing_id"],
        "number": data["number"],
        "trigger": data["trigger"],
        "coalesced_triggers": list(data["coalesced_triggers"] or []),
        "status": data["status"],
        "progress": data["progress"],
        "requested_by": data["requested_by"],
        "notes": data["notes"],
        "queued_at": data["queued_at"],
        "started_at": started,
        "finished_at": finished,
        "duration_ms": (
            int((finished - started).total_seconds() * 1000) if started and finished else None
        ),
        "movements_processed": data["movements_processed"],
        "error": data["error"],
        "summary": data["summary"],
        "attempts": data["attempts"],
    }
    if with_diff:
        resource["diff"] = data.get("diff")
    return resource


async def lock_open_closing(
    conn: AsyncConnection, tenant_id: uuid.UUID, closing_id: uuid.UUID
) -> Any:
    """Lock the closing row for this transaction; NotFound for other tenants, 409 if closed.

    The row lock serialises numbering and coalescing across API replicas; the partial unique
    indexes on iterations are the last line of defence.
    """
    return await _open_closing(conn, tenant_id, closing_id, lock=True)


async def check_open_closing(
    conn: AsyncConnection, tenant_id: uuid.UUID, closing_id: uuid.UUID
) -> Any:
    """The closing, if it is the tenant's and open (NotFound / Conflict otherwise)."""
    return await _open_closing(conn, tenant_id, closing_id, lock=False)


async def _open_closing(
    conn: AsyncConnection, tenant_id: uuid.UUID, closing_id: uuid.UUID, *, lock: bool
) -> Any:
    query = sa.select(closings).where(
        closings.c.id == closing_id, closings.c.tenant_id == tenant_id
    )
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise NotFound(f"closing {closing_id} not found")
    if row.status != "open":
        raise Conflict(f"closing {closing_id} is closed; reopen it (PATCH status=open) first")
    return row


async def request_iteration(
    conn: AsyncConnection,
    closing_id: uuid.UUID,
    trigger: str,
    *,
    requested_by: str | None,
    notes: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Queue a new iteration, or merge the trigger into the one already queued.

    The caller must hold the closing's lock (lock_open_closing) in this transaction.
    """
    assert trigger in TRIGGERS, trigger
    merged = (
        await conn.execute(
            sa.update(iterations)
            .where(iterations.c.closing_id == closing_id, iterations.c.status == "queued")
            .values(
                coalesced_triggers=sa.func.array_append(iterations.c.coalesced_triggers, trigger)
            )
            .returning(*_PUBLIC)
        )
    ).first()
    if merged is not None:
        return to_resource(merged)
    next_number = (
        sa.select(sa.func.coalesce(sa.func.max(iterations.c.number), 0) + 1)
        .where(iterations.c.closing_id == closing_id)
        .scalar_subquery()
    )
    created = (
        await conn.execute(
            sa.insert(iterations)
            .values(
                closing_id=closing_id,
                ledger_id=sa.select(closings.c.ledger_id)
                .where(closings.c.id == closing_id)
                .scalar_subquery(),
                number=next_number,
                trigger=trigger,
                requested_by=requested_by,
                notes=notes,
                request_id=request_id,
            )
            .returning(*_PUBLIC)
        )
    ).one()
    return to_resource(created)


async def enqueue(resources: Resources, queued: Iterable[dict[str, Any]]) -> None:
    """Queue the jobs of iterations committed as queued (after the commit, never before)."""
    for iteration in queued:
        await enqueue_by_id(resources, iteration["id"], iteration["attempts"])


async def enqueue_by_id(resources: Resources, iteration_id: uuid.UUID, attempts: int) -> None:
    """Queue one committed iteration's job."""
    await enqueue_iteration(
        resources.redis, resources.settings.redis_key_prefix, iteration_id, attempts
    )


async def list_iterations(conn: AsyncConnection, closing_id: uuid.UUID) -> list[dict[str, Any]]:
    """The closing's iterations, newest first."""
    rows = await conn.execute(
        sa.select(*_PUBLIC)
        .where(iterations.c.closing_id == closing_id)
        .order_by(iterations.c.number.desc())
    )
    return [to_resource(row) for row in rows]


async def get_iteration(
    conn: AsyncConnection, closing_id: uuid.UUID, number: int
) -> dict[str, Any]:
    """One iteration of the closing, with its diff."""
    row = (
        await conn.execute(
            sa.select(*_PUBLIC, iterations.c.diff).where(
                iterations.c.closing_id == closing_id, iterations.c.number == number
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"iteration {number} of closing {closing_id} not found")
    return to_resource(row, with_diff=True)
