"""Snapshots: publishing an iteration's result atomically, and reading results back."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.postgres.tables import (
    closings,
    incidence_lines,
    iteration_results,
    iterations,
    snapshots,
)
from app.services.iterations.claims import Claim
from app.services.snapshot_cache.served import compose


@dataclass(frozen=True)
class Published:
    """What a publish made servable: the snapshot's new revision and its served body (the
    document with the closing's reviews) and content hash."""

    revision: int
    body: bytes
    content_hash: str


class _ClaimLost(Exception):
    """Taken over while publishing: the transaction is rolled back."""


async def publish(
    engine: AsyncEngine,
    claimed: Claim,
    *,
    document: bytes,
    content_hash: str,
    lines: Mapping[str, bytes | memoryview],
    summary: dict[str, Any],
    diff: dict[str, Any],
) -> Published | None:
    """Store the result, finish the iteration and point the snapshot at it, in one transaction.
    Returns None (and changes nothing) when the claim was lost to another attempt."""
    try:
        async with engine.begin() as conn:
            # The claim is checked first, its row only KEY SHARE-locked until the closing's lock is
            # held. Requests lock closings, then queued iteration rows FOR NO KEY UPDATE; one whose
            # statement began before this iteration was claimed still meets this row, and waits for
            # any stronger lock on it: for a share lock it waited on this transaction while this
            # one waited for a closing it held (deadlocks under bench/load.py). A takeover in the
            # meantime is caught by the final update, which then changes nothing.
            held = await conn.scalar(
                sa.select(iterations.c.id)
                .where(claimed.owned())
                .with_for_update(read=True, key_share=True)
            )
            if held is None:
                raise _ClaimLost
            # The result's bytes go in before the closing's lock is taken: requests that queue or
            # review take that lock too, and must not wait for this copy.
            # Large values go as execution parameters, never into the statement: SQLAlchemy's
            # statement cache keeps the first statement of each shape, and with it such a value
            # (a 40,000-incidence document held 16 MiB of a worker after its job).
            await conn.execute(
                sa.insert(iteration_results),
                {
                    "iteration_id": claimed.iteration_id,
                    "content_hash": content_hash,
                    "document": document,
                },
            )
            raw = await conn.get_raw_connection()
            assert raw.driver_connection is not None
            await raw.driver_connection.copy_records_to_table(
                incidence_lines.name,
                records=[(claimed.iteration_id, key, packed) for key, packed in lines.items()],
                columns=["iteration_id", "key", "lines"],
            )
            # The served body adds the closing's reviews: read under its lock, no review slips in.
            await conn.execute(
                sa.select(closings.c.id)
                .where(closings.c.id == claimed.closing_id)
                .with_for_update(key_share=True)
            )
            finished = await conn.execute(
                sa.update(iterations)
                .where(claimed.owned())
                .values(
                    status="succeeded",
                    progress=1.0,
                    movements_processed=claimed.movements_processed,
                    finished_at=sa.func.now(),
                    heartbeat_at=None,
                    summary=sa.bindparam("summary", type_=iterations.c.summary.type),
                    diff=sa.bindparam("diff", type_=iterations.c.diff.type),
                ),
                {"summary": summary, "diff": diff},
            )
            if finished.rowcount != 1:
                raise _ClaimLost
            body, served_hash = await compose(conn, claimed.closing_id, document, content_hash)
            revision = await conn.scalar(
                insert(snapshots)
                .values(
                    closing_id=claimed.closing_id,
                    iteration_id=claimed.iteration_id,
                    content_hash=served_hash,
                )
                .on_conflict_do_update(
                    index_elements=[snapshots.c.closing_id],
                    set_={
                        "iteration_id": claimed.iteration_id,
                        "content_hash": served_hash,
                        "published_at": sa.func.now(),
                        "revision": snapshots.c.revision + 1,
                    },
                )
                .returning(snapshots.c.revision)
            )
    except _ClaimLost:
        return None
    return Published(int(revision), body, served_hash)


async def result_document(conn: AsyncConnection, iteration_id: uuid.UUID) -> dict[str, Any] | None:
    """The stored snapshot document of a succeeded iteration, parsed."""
    data = (
        await conn.execute(
            sa.select(iteration_results.c.document).where(
                iteration_results.c.iteration_id == iteration_id
            )
        )
    ).scalar_one_or_none()
    return orjson.loads(data) if data is not None else None


async def previous_result(conn: AsyncConnection, closing_id: uuid.UUID) -> dict[str, Any] | None:
    """The document of the closing's latest succeeded iteration (what the snapshot serves)."""
    iteration_id = (
        await conn.execute(
            sa.select(snapshots.c.iteration_id).where(snapshots.c.closing_id == closing_id)
        )
    ).scalar_one_or_none()
    return await result_document(conn, iteration_id) if iteration_id else None
