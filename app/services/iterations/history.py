"""Read side of a closing's results: stored iteration documents and the diffs between them."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import iterations
from app.domain.diff import diff_incidences
from app.domain.errors import Conflict, NotFound
from app.services.iterations.publish import result_document


async def succeeded_document(
    conn: AsyncConnection, closing_id: uuid.UUID, number: int
) -> dict[str, Any]:
    """The stored result of iteration `number`; 404 if unknown, 409 if it has not succeeded."""
    row = (
        await conn.execute(
            sa.select(iterations.c.id, iterations.c.status).where(
                iterations.c.closing_id == closing_id, iterations.c.number == number
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"iteration {number} of closing {closing_id} not found")
    if row.status != "succeeded":
        raise Conflict(
            f"iteration {number} is {row.status}: only succeeded iterations have results"
        )
    document = await result_document(conn, row.id)
    if document is None:
        raise NotFound(f"the results of iteration {number} are no longer retained")
    return document


async def diff_between(
    conn: AsyncConnection, closing_id: uuid.UUID, before: int, after: int
) -> dict[str, Any]:
    """Diff of two succeeded iterations' incidence sets (SPEC §4)."""
    first = await succeeded_document(conn, closing_id, before)
    second = await succeeded_document(conn, closing_id, after)
    diff = diff_incidences(first["incidences"], second["incidences"])
    return {"from": before, "to": after, **diff.to_dict()}
