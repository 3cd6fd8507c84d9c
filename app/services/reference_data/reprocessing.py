"""Reference-data changes re-process exactly the open closings whose ledger they touch."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import closings, iterations, ledgers
from app.services.iterations.coalesce import merge_into_every_queued, uuid_array
from app.services.iterations.request import request_iterations, to_resource


async def reprocess_affected_closings(
    conn: AsyncConnection,
    *,
    tenant_id: uuid.UUID,
    client_id: uuid.UUID,
    trigger: str,
    account_codes: Collection[str] = (),
    document_type_codes: Collection[str] = (),
    requested_by: str | None,
    request_id: str | None = None,
) -> list[dict[str, Any]]:
    """Queue (or coalesce into) an iteration for each affected open closing; returns them.

    A closing is affected when its current ledger uses one of the touched codes. A ledger not
    parsed yet has no known codes: it counts as affected, since the run in flight may have
    read the reference data before this change.
    """
    if not account_codes and not document_type_codes:
        return []
    text_array = pg.ARRAY(sa.Text)
    uses_touched_code = sa.or_(
        ledgers.c.account_codes.is_(None),
        ledgers.c.account_codes.op("&&")(sa.cast(sorted(account_codes), text_array)),
        ledgers.c.document_type_codes.op("&&")(sa.cast(sorted(document_type_codes), text_array)),
    )
    open_and_affected = sa.and_(
        closings.c.tenant_id == tenant_id,
        closings.c.client_id == client_id,
        closings.c.status == "open",
        uses_touched_code,
    )
    rows = (
        await conn.execute(
            sa.select(closings.c.id, _has_queued().label("has_queued"))
            .join(ledgers, ledgers.c.id == closings.c.ledger_id)
            .where(open_and_affected)
            .order_by(closings.c.id)
        )
    ).all()
    if not rows:
        return []
    affected = [row.id for row in rows]
    # Most often every one has a run queued already (a burst of edits, a busy worker): the
    # change then joins those runs without taking the closings' locks, which made each edit of
    # a client wait for the one before.
    if all(row.has_queued for row in rows):
        merged = await merge_into_every_queued(conn, affected, trigger)
        if merged is not None:
            return [to_resource(row) for row in merged]
    locked = (
        (
            await conn.execute(
                sa.select(closings.c.id)
                .join(ledgers, ledgers.c.id == closings.c.ledger_id)
                .where(closings.c.id == sa.any_(uuid_array(affected)), open_and_affected)
                .order_by(closings.c.id)  # a fixed lock order: concurrent changes cannot deadlock
                .with_for_update(of=closings, key_share=True)
            )
        )
        .scalars()
        .all()
    )
    if not locked:
        return []
    return await request_iterations(
        conn, locked, trigger, requested_by=requested_by, request_id=request_id
    )


def _has_queued() -> sa.Exists:
    return (
        sa.select(iterations.c.id)
        .where(iterations.c.closing_id == closings.c.id, iterations.c.status == "queued")
        .exists()
    )
