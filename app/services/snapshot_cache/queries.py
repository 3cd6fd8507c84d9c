"""The movements behind one incidence of a snapshot (drill-down), by keyset pages."""

from __future__ import annotations

import base64
import contextlib
import uuid
from typing import Any

import orjson
import polars as pl
import sqlalchemy as sa
from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.cpu_pool import CpuPool
from app.adapters.postgres import ledger_store
from app.adapters.postgres.lines_codec import page_after
from app.adapters.postgres.tables import closings, incidence_lines, iterations, snapshots
from app.domain.amounts import format_amount
from app.domain.errors import InvalidInput, NotFound
from app.domain.ledger.format import KEY_FIELDS, TEXT_FIELDS


def _encode_cursor(iteration_id: uuid.UUID, after_line: int) -> str:
    raw = orjson.dumps({"i": str(iteration_id), "a": after_line})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[uuid.UUID, int]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return uuid.UUID(data["i"]), int(data["a"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise InvalidInput("cursor is not one this API returned") from None


# Rendered pages, by (iteration, key, after, limit): an iteration's incidences and its ledger's
# movements never change, so a page never goes stale. It is looked up only once the caller's
# tenant has been checked to own the closing, and the closing the iteration (_page_source).
PAGE_CACHE_BYTES = 32 * 1024 * 1024
PageKey = tuple[uuid.UUID, str, int, int]


def page_cache() -> LRUCache[PageKey, bytes]:
    """An empty cache of movement pages (JSON bytes), bounded by their total size."""
    return LRUCache(PAGE_CACHE_BYTES, getsizeof=len)


async def movements_page(
    conn: AsyncConnection,
    cpu: CpuPool,
    pages: LRUCache[PageKey, bytes],
    tenant_id: uuid.UUID,
    closing_id: uuid.UUID,
    key: str,
    limit: int,
    cursor: str | None,
) -> bytes:
    """A page of the movements behind `key`, by ascending line (keyset pagination), as JSON.

    The cursor pins the iteration it started on, so paging stays consistent even if a new
    snapshot is published meanwhile. Decoding the movements (stored batches of up to 250,000
    rows) and rendering the page are done in the CPU pool's threads, never on the event loop.
    """
    if cursor is None:
        iteration_id, after = None, 0
    else:
        iteration_id, after = _decode_cursor(cursor)
    iteration_id, ledger_id = await _page_source(conn, tenant_id, closing_id, iteration_id)
    if "\x00" in key:  # no key has one, and Postgres text cannot even compare with it
        raise NotFound(f"no incidence {key!r} in the snapshot")
    page_key = (iteration_id, key, after, limit)
    page = pages.get(page_key)
    if page is None:
        page = await _render_page(conn, cpu, iteration_id, ledger_id, key, after, limit)
        with contextlib.suppress(ValueError):  # larger than the whole cache: not kept
            pages[page_key] = page
    return page


# Built once, with named parameters (a page of movements is a frequent read): the served
# snapshot's iteration, or the cursor's, with its ledger, if the tenant owns the closing.
_TENANTS_CLOSING = (
    closings.c.id == sa.bindparam("closing_id"),
    closings.c.tenant_id == sa.bindparam("tenant_id"),
)
_SERVED_SOURCE = (
    sa.select(iterations.c.id, iterations.c.ledger_id)
    .select_from(
        closings.outerjoin(snapshots, snapshots.c.closing_id == closings.c.id).outerjoin(
            iterations, iterations.c.id == snapshots.c.iteration_id
        )
    )
    .where(*_TENANTS_CLOSING)
)
_CURSOR_SOURCE = (
    sa.select(iterations.c.id, iterations.c.ledger_id)
    .select_from(
        closings.outerjoin(
            iterations,
            (iterations.c.id == sa.bindparam("iteration_id"))
            & (iterations.c.closing_id == closings.c.id),
        )
    )
    .where(*_TENANTS_CLOSING)
)


async def _page_source(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    closing_id: uuid.UUID,
    iteration_id: uuid.UUID | None,
) -> tuple[uuid.UUID, uuid.UUID]:
    """(iteration, its ledger) to page through, in one query: the cursor's iteration, or the
    served snapshot's. NotFound unless the tenant owns the closing and it has a snapshot;
    InvalidInput when the cursor's iteration is not this closing's (forged, or foreign)."""
    values = {"closing_id": closing_id, "tenant_id": tenant_id}
    if iteration_id is None:
        row = (await conn.execute(_SERVED_SOURCE, values)).first()
    else:
        row = (await conn.execute(_CURSOR_SOURCE, {**values, "iteration_id": iteration_id})).first()
    if row is None:
        raise NotFound(f"closing {closing_id} not found")
    if row.id is None and iteration_id is None:
        raise NotFound(f"closing {closing_id} has no snapshot yet")
    if row.id is None or row.ledger_id is None:
        raise InvalidInput("cursor is not one this API returned for this closing")
    return row.id, row.ledger_id


async def _render_page(
    conn: AsyncConnection,
    cpu: CpuPool,
    iteration_id: uuid.UUID,
    ledger_id: uuid.UUID,
    key: str,
    after: int,
    limit: int,
) -> bytes:
    packed = (
        await conn.execute(
            sa.select(incidence_lines.c.lines).where(
                incidence_lines.c.iteration_id == iteration_id, incidence_lines.c.key == key
            )
        )
    ).scalar_one_or_none()
    if packed is None:
        raise NotFound(f"no incidence {key!r} in the snapshot")
    page_lines = page_after(packed, after, limit + 1)
    has_more = len(page_lines) > limit
    lines = list(page_lines[:limit])
    parts = [
        await cpu.thread(ledger_store.lines_of_batch, data, lines)
        async for data in ledger_store.batches_holding(conn, ledger_id, lines)
    ]
    next_cursor = _encode_cursor(iteration_id, lines[-1]) if has_more else None
    return await cpu.thread(_page_json, parts, next_cursor)


def _page_json(parts: list[pl.DataFrame], next_cursor: str | None) -> bytes:
    return orjson.dumps({"items": _movement_json(parts), "next_cursor": next_cursor})


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
