"""Snapshots: publishing an iteration's result atomically, and reading results back."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.postgres.tables import (
    incidence_lines,
    iteration_results,
    iterations,
    snapshots,
)
from app.services.iterations.claims import Claim


async def publish(
    engine: AsyncEngine,
    claimed: Claim,
    *,
    document: bytes,
    content_hash: str,
    lines: Mapping[str, bytes | memoryview],
    summary: dict[str, Any],
    diff: dict[str, Any],
) -> bool:
    """Store the result, finish the iteration and point the snapshot at it, in one transaction.

    Returns False (and changes nothing) when the claim was lost to another attempt.
    """
    async with engine.begin() as conn:
        finished = (
            await conn.execute(
                sa.update(iterations)
                .where(claimed.owned())
                .values(
                    status="succeeded",
                    progress=1.0,
                    movements_processed=claimed.movements_processed,
                    finished_at=sa.func.now(),
                    heartbeat_at=None,
                    summary=summary,
                    diff=diff,
                )
                .returning(iterations.c.id)
            )
        ).first()
        if finished is None:
            return False
        await conn.execute(
            sa.insert(iteration_results).values(
                iteration_id=claimed.iteration_id, content_hash=content_hash, document=document
            )
        )
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        await raw.driver_connection.copy_records_to_table(
            incidence_lines.name,
            records=[(claimed.iteration_id, key, packed) for key, packed in lines.items()],
            columns=["iteration_id", "key", "lines"],
        )
        await conn.execute(
            insert(snapshots)
            .values(
                closing_id=claimed.closing_id,
                iteration_id=claimed.iteration_id,
                content_hash=content_hash,
            )
            .on_conflict_do_update(
                index_elements=[snapshots.c.closing_id],
                set_={
                    "iteration_id": claimed.iteration_id,
                    "content_hash": content_hash,
                    "published_at": sa.func.now(),
                },
            )
        )
    return True


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
