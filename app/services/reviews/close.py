"""Closing and reopening a month, behind the close gate (SPEC §10): a closing is not closed
while an error incidence of its snapshot is neither resolved nor acknowledged, unless an admin
forces it (recorded in the audit trail, with the keys it passed over)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import closings
from app.domain.errors import CloseBlocked
from app.domain.review import unreviewed_errors
from app.services.audit.record import Actor, Change, record
from app.services.reviews.store import served_incidences
from app.services.snapshot_cache.served import load_reviews
from app.services.tenancy.closings import get_closing, lock_closing


async def set_status(
    conn: AsyncConnection, actor: Actor, closing_id: uuid.UUID, status: str, force: bool = False
) -> dict[str, Any]:
    """Close or reopen a closing (audited); setting the status it already has changes
    nothing. Closing is refused (CloseBlocked) while unreviewed errors remain, unless forced:
    the caller checks that only an admin forces."""
    # The row lock orders this after an upload, re-processing or review holding it, so a
    # closing is never closed halfway through queueing one of its iterations.
    current = await lock_closing(conn, actor.tenant_id, closing_id)
    if current.status == status:
        return await get_closing(conn, actor.tenant_id, closing_id)
    details: dict[str, Any] = {"status": {"before": current.status, "after": status}}
    action = "closing.reopened"
    if status == "closed":
        _, incidences = await served_incidences(conn, closing_id)
        pending = unreviewed_errors(incidences, await load_reviews(conn, closing_id))
        if pending and not force:
            raise CloseBlocked(closing_id, pending)
        action = "closing.force_closed" if pending else "closing.closed"
        if pending:
            details["unreviewed_keys"] = pending
    await conn.execute(
        sa.update(closings)
        .where(closings.c.id == closing_id)
        .values(status=status, updated_at=sa.func.now())
    )
    change = Change(action, "closing", str(closing_id), details, current.client_id, closing_id)
    await record(conn, actor, [change])
    return await get_closing(conn, actor.tenant_id, closing_id)
