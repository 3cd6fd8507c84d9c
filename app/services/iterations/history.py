"""Read side of a closing's results: the diff between any two retained iterations (SPEC §4).

A diff parses two whole incidence sets (a 40,000-incidence closing is 16 MB each), so it is
computed in the CPU pool, never on the event loop, and kept in a bounded in-process cache: a
succeeded iteration's result never changes, so neither does a diff between two of them.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.cpu_pool import CpuPool
from app.adapters.postgres.tables import iteration_results, iterations
from app.domain.diff import diff_documents
from app.domain.errors import Conflict, NotFound

DiffKey = tuple[uuid.UUID, int, int]
DIFF_CACHE_BYTES = 128 * 1024 * 1024  # a 100,000-change diff is about 20 MB


def diff_cache() -> LRUCache[DiffKey, bytes]:
    """An empty cache of diffs (JSON bytes), bounded by their total size."""
    return LRUCache(DIFF_CACHE_BYTES, getsizeof=len)


async def _retained(conn: AsyncConnection, closing_id: uuid.UUID, number: int) -> uuid.UUID:
    """The id of iteration `number`; 404 if unknown or its result is no longer retained, 409
    if it has not succeeded."""
    row = (
        await conn.execute(
            sa.select(
                iterations.c.id,
                iterations.c.status,
                sa.exists()
                .where(iteration_results.c.iteration_id == iterations.c.id)
                .label("retained"),
            ).where(iterations.c.closing_id == closing_id, iterations.c.number == number)
        )
    ).first()
    if row is None:
        raise NotFound(f"iteration {number} of closing {closing_id} not found")
    if row.status != "succeeded":
        raise Conflict(
            f"iteration {number} is {row.status}: only succeeded iterations have results"
        )
    if not row.retained:
        raise NotFound(f"the results of iteration {number} are no longer retained")
    iteration_id: uuid.UUID = row.id
    return iteration_id


async def _document(conn: AsyncConnection, iteration_id: uuid.UUID) -> bytes:
    document: bytes = (
        await conn.execute(
            sa.select(iteration_results.c.document).where(
                iteration_results.c.iteration_id == iteration_id
            )
        )
    ).scalar_one()
    return document


async def diff_between(
    conn: AsyncConnection,
    cpu: CpuPool,
    cache: LRUCache[DiffKey, bytes],
    closing_id: uuid.UUID,
    before: int,
    after: int,
) -> bytes:
    """The JSON of the diff between two succeeded iterations' incidence sets (SPEC §4)."""
    first = await _retained(conn, closing_id, before)
    second = await _retained(conn, closing_id, after)
    key = (closing_id, before, after)
    cached = cache.get(key)
    if cached is not None:
        return cached
    old, new = await _document(conn, first), await _document(conn, second)
    diff = await cpu.run(len(old) + len(new), diff_documents, old, new, (before, after))
    if len(diff) <= cache.maxsize // 4:  # one huge diff must not push all others out
        cache[key] = diff
    return diff
