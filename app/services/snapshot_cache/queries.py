"""The movements behind one incidence of a snapshot (drill-down), by keyset pages."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson
import polars as pl
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.cpu_pool import CpuPool
from app.adapters.postgres import ledger_store
from app.adapters.postgres.lines_codec import page_after
from app.adapters.postgres.tables import incidence_lines, iterations, snapshots
from app.domain.amounts import format_amount
from app.domain.errors import InvalidInput, NotFound
from app.domain.ledger.format import KEY_FIELDS, TEXT_FIELDS
from app.services.tenancy.closings import check_closing


def _encode_cursor(iteration_id: uuid.UUID, after_line: int) -> str:
    raw = orjson.dumps({"i": str(iteration_id), "a": after_line})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[uuid.UUID, int]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return uuid.UUID(data["i"]), int(data["a"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise InvalidInput("cursor is not one this API returned") from None


async def movements_page(
    conn: AsyncConnection,
    cpu: CpuPool,
    tenant_id: uuid.UUID,
    closing_id: uuid.UUID,
    key: str,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """A page of the movements behind `key`, by ascending line (keyset pagination).

    The cursor pins the iteration it started on, so paging stays consistent even if a new
    snapshot is published meanwhile. Decoding the movements (stored batches of up to 250,000
    rows) is done in the CPU pool's threads, never on the event loop.
    """
    await check_closing(conn, tenant_id, closing_id)
    if "\x00" in key:  # no key has one, and Postgres text cannot even compare with it
        raise NotFound(f"no incidence {key!r} in the snapshot")
    if cursor is None:
        iteration_id = (
            await conn.execute(
                sa.select(snapshots.c.iteration_id).where(snapshots.c.closing_id == closing_id)
            )
        ).scalar_one_or_none()
        if iteration_id is None:
            raise NotFound(f"closing {closing_id} has no snapshot yet")
        after = 0
    else:
        iteration_id, after = _decode_cursor(cursor)
    packed = (
        await conn.execute(
            sa.select(incidence_lines.c.lines)
            .join(iterations, iterations.c.id == incidence_lines.c.iteration_id)
            .where(
                incidence_lines.c.iteration_id == iteration_id,
                iterations.c.closing_id == closing_id,
                incidence_lines.c.key == key,
            )
        )
    ).scalar_one_or_none()
    if packed is None:
        raise NotFound(f"no incidence {key!r} in the snapshot")
    page_lines = page_after(packed, after, limit + 1)
    has_more = len(page_lines) > limit
    lines = list(page_lines[:limit])
    ledger_id = (
        await conn.execute(
            sa.select(iterations.c.ledger_id).where(
                iterations.c.id == iteration_id, iterations.c.closing_id == closing_id
            )
        )
    ).scalar_one_or_none()
    if ledger_id is None:  # a forged or foreign cursor: its iteration is not this closing's
        raise InvalidInput("cursor is not one this API returned for this closing")
    parts = [
        await cpu.thread(ledger_store.lines_of_batch, data, lines)
        async for data in ledger_store.batches_holding(conn, ledger_id, lines)
    ]
    return {
        "items": await cpu.thread(_movement_json, parts),
        "next_cursor": _encode_cursor(iteration_id, lines[-1]) if has_more else None,
    }


def _movement_json(parts: list[pl.DataFrame]) -> list[dict[str, Any]]:
    """Movements by line as JSON: ISO dates, amounts as canonical decimal strings (like
    incidences)."""
    if not parts:
        return []
    shown = (
        pl.concat(parts)
        .sort("line")
        .select(
            "line", *KEY_FIELDS, *TEXT_FIELDS, "debit", "credit", "invalid_field", "invalid_reason"
        )
    )
    movements = shown.to_dicts()
    for movement in movements:
        for side in ("debit", "credit"):
            if movement[side] is not None:
                movement[side] = format_amount(movement[side])
        if movement["date"] is not None:
            movement["date"] = movement["date"].isoformat()
    return movements
