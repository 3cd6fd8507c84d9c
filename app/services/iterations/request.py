"""Iterations: requesting (with coalescing), reading, and queueing their jobs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import UUID_ARRAY, closings, iterations, ledgers
from app.adapters.queue import enqueue_iteration
from app.domain.errors import Conflict, NotFound
from app.resources import Resources
from app.services.audit.record import Actor, Change, record
from app.services.iterations.coalesce import PUBLIC, merge
from app.services.paging import keyset_page
from app.services.tenancy.closings import lock_open_closing

TRIGGERS = (
    "initial",
    "ledger_replaced",
    "manual",
    "document_types_updated",
    "classification_updated",
    "english_names_updated",
    "accounts_updated",
)


_WITHOUT_DIFF = tuple(column for column in PUBLIC if column is not iterations.c.diff)


def to_resource(row: Any) -> dict[str, Any]:
    """The iteration as the API shows it (SPEC §6 fields, its diff included when selected)."""
    data = dict(row._mapping)
    started, finished = data.get("started_at"), data.get("finished_at")
    return {
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
        "diff": data.get("diff"),
        "parse": data.get("parse"),
        "attempts": data["attempts"],
    }


async def request_iteration(
    conn: AsyncConnection,
    closing_id: uuid.UUID,
    trigger: str,
    *,
    requested_by: str | None,
    notes: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """request_iterations for one closing."""
    [iteration] = await request_iterations(
        conn, [closing_id], trigger, requested_by=requested_by, notes=notes, request_id=request_id
    )
    return iteration


async def request_iterations(
    conn: AsyncConnection,
    closing_ids: Sequence[uuid.UUID],
    trigger: str,
    *,
    requested_by: str | None,
    notes: str | None = None,
    request_id: str | None = None,
) -> list[dict[str, Any]]:
    """For each closing, queue a new iteration or merge the trigger (and notes) into its queued
    one; returns them in the closings' order. At most three statements, however many closings:
    a reference-data change holds all their locks meanwhile, which the caller must hold
    (lock_open_closing). A worker may claim a queued iteration meanwhile: the row lock (FOR NO
    KEY UPDATE) waits for the claim, then skips the row no longer queued, and that closing gets
    a new iteration."""
    assert trigger in TRIGGERS, trigger
    queued = (await conn.execute(_QUEUED_OF_CLOSINGS, {"closing_ids": list(closing_ids)})).all()
    merged = await merge(conn, queued, trigger, notes, requested_by) if queued else []
    waiting = {row.closing_id for row in queued}
    fresh = [closing_id for closing_id in closing_ids if closing_id not in waiting]
    created = (
        await create_queued(conn, fresh, trigger, requested_by, notes, request_id) if fresh else []
    )
    by_closing = {row.closing_id: to_resource(row) for row in (*merged, *created)}
    return [by_closing[closing_id] for closing_id in closing_ids]


async def create_queued(
    conn: AsyncConnection,
    closing_ids: Sequence[uuid.UUID],
    trigger: str,
    requested_by: str | None,
    notes: str | None,
    request_id: str | None,
) -> Sequence[Any]:
    """A new queued iteration for each closing, numbered after its last: one INSERT … SELECT."""
    values = {
        "closing_ids": list(closing_ids),
        "new_trigger": trigger,
        "new_requested_by": requested_by,
        "new_notes": notes,
        "new_request_id": request_id,
    }
    return (await conn.execute(_CREATE_QUEUED, values)).all()


# Built once, with named parameters: every upload, re-processing and reference-data change
# runs them.
_CLOSING_IDS = sa.bindparam("closing_ids", type_=UUID_ARRAY)
_QUEUED_OF_CLOSINGS = (
    sa.select(
        iterations.c.id,
        iterations.c.closing_id,
        iterations.c.coalesced_triggers,
        iterations.c.requested_by,
        iterations.c.notes,
    )
    .where(iterations.c.closing_id == sa.any_(_CLOSING_IDS), iterations.c.status == "queued")
    .order_by(iterations.c.closing_id)
    .with_for_update(key_share=True)
)
_NEXT_NUMBER = (
    sa.select(sa.func.coalesce(sa.func.max(iterations.c.number), 0) + 1)
    .where(iterations.c.closing_id == closings.c.id)
    .scalar_subquery()
)
_NEW_ITERATION = {
    "closing_id": closings.c.id,
    "ledger_id": closings.c.ledger_id,
    "number": _NEXT_NUMBER,
    "trigger": sa.bindparam("new_trigger", type_=sa.Text),
    "requested_by": sa.bindparam("new_requested_by", type_=sa.Text),
    "notes": sa.bindparam("new_notes", type_=sa.Text),
    "request_id": sa.bindparam("new_request_id", type_=sa.Text),
    "parse": ledgers.c.parse,
}
_CREATE_QUEUED = (
    sa.insert(iterations)
    .from_select(
        list(_NEW_ITERATION),
        sa.select(*(value.label(name) for name, value in _NEW_ITERATION.items()))
        .select_from(closings.outerjoin(ledgers, ledgers.c.id == closings.c.ledger_id))
        .where(closings.c.id == sa.any_(_CLOSING_IDS)),
    )
    .returning(*PUBLIC)
)


# Jobs queued at once by one request: a reference-data change queues one per affected closing,
# each a few Redis round trips on a connection of its own, out of the process's shared pool.
ENQUEUE_AT_ONCE = 8


async def enqueue(resources: Resources, requested: Sequence[dict[str, Any]]) -> None:
    """Queue the jobs of the iterations a request created (after the commit, never before), a
    few at a time: one after another, a change re-processing many closings kept its caller
    waiting for every round trip in turn.

    One that a request was merged into (its coalesced_triggers say so) has its job already,
    queued with it or at its closing's hand-off; queueing it again cost a change of a busy
    client four Redis round trips per closing for nothing (arq refuses a job id it holds).
    A job lost all the same (Redis lost its data) is queued again by the worker's sweeper."""
    created = [iteration for iteration in requested if not iteration["coalesced_triggers"]]
    for start in range(0, len(created), ENQUEUE_AT_ONCE):
        await asyncio.gather(
            *(
                enqueue_by_id(resources, iteration["id"], iteration["attempts"])
                for iteration in created[start : start + ENQUEUE_AT_ONCE]
            )
        )


async def enqueue_by_id(
    resources: Resources, iteration_id: uuid.UUID, attempts: int, after: int | None = None
) -> None:
    """Queue one committed iteration's job.

    `after` makes it a hand-off: the job queued, when iteration number `after` of the closing
    ended, for the queued iteration that waited for it. A hand-off needs its own job id: the
    waiting iteration's first job may still be in flight (it found the closing busy and is about
    to return), and arq silently refuses a second job under an id it still holds, which would
    leave the iteration stranded until the sweeper finds it. Two jobs for one iteration are
    harmless: only one can claim it.
    """
    await enqueue_iteration(
        resources.redis, resources.settings.redis_key_prefix, iteration_id, attempts, after
    )


# Built once, with named parameters: history is a frequent read.
_HISTORY_PAGE = (
    sa.select(*PUBLIC)
    .where(
        iterations.c.closing_id == sa.bindparam("closing_id"),
        iterations.c.number < sa.bindparam("before", type_=sa.BigInteger),
    )
    .order_by(iterations.c.number.desc())
    .limit(sa.bindparam("limit"))
)


async def list_iterations(
    conn: AsyncConnection, closing_id: uuid.UUID, limit: int, before: int | None = None
) -> dict[str, Any]:
    """A page of the closing's iterations, newest first: at most `limit` numbered below
    `before` (keyset pagination); `next_cursor` is the `before` of the next page, or None."""
    first_page = 2**31  # above every iteration number (a Postgres integer)
    values = {
        "closing_id": closing_id,
        "before": first_page if before is None else before,
        "limit": limit + 1,
    }
    rows = (await conn.execute(_HISTORY_PAGE, values)).all()
    return keyset_page([to_resource(row) for row in rows], limit, lambda item: item["number"])


async def get_iteration(
    conn: AsyncConnection, closing_id: uuid.UUID, number: int
) -> tuple[dict[str, Any], bytes | None]:
    """One iteration of the closing, and its diff as UTF-8 JSON: a diff of thousands of keys is
    passed on as Postgres writes it, never parsed and encoded again on the event loop."""
    diff_json = sa.func.convert_to(iterations.c.diff.cast(sa.Text), "UTF8", type_=sa.LargeBinary)
    row = (
        await conn.execute(
            sa.select(*_WITHOUT_DIFF, diff_json.label("diff_json")).where(
                iterations.c.closing_id == closing_id, iterations.c.number == number
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"iteration {number} of closing {closing_id} not found")
    return to_resource(row), row.diff_json


async def reprocess(
    resources: Resources, actor: Actor, closing_id: uuid.UUID, notes: str | None
) -> dict[str, Any]:
    """Queue a `manual` iteration (or merge into the queued one), audited, and queue its job."""
    async with resources.engine.begin() as conn:
        closing = await lock_open_closing(conn, actor.tenant_id, closing_id)
        if closing.ledger_id is None:
            raise Conflict(f"closing {closing_id} has no ledger yet: upload one first")
        iteration = await request_iteration(
            conn,
            closing_id,
            "manual",
            requested_by=actor.key_name,
            notes=notes,
            request_id=actor.request_id,
        )
        details = {"notes": notes, "iteration": iteration["number"]}
        requested = Change(
            "closing.reprocess_requested",
            "closing",
            str(closing_id),
            details,
            closing.client_id,
            closing_id,
        )
        await record(conn, actor, [requested])
    await enqueue(resources, [iteration])
    return iteration
