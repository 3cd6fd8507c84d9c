"""Postgres reads behind the snapshot cache: one closing's snapshot, and the open closings'."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import closings, iteration_results, snapshots
from app.domain.errors import NotFound
from app.domain.snapshot import SnapshotEntry
from app.services.snapshot_cache.served import compose
from app.services.tenancy.closings import check_closing


def _snapshot_query() -> sa.Select[tuple[int, str, uuid.UUID, uuid.UUID, uuid.UUID]]:
    return (
        sa.select(
            snapshots.c.revision,
            snapshots.c.content_hash,
            closings.c.client_id,
            closings.c.tenant_id,
            closings.c.id,
        )
        .select_from(snapshots)
        .join(closings, closings.c.id == snapshots.c.closing_id)
    )


# Built once, with named parameters (every cache fill runs it). The document comes only when
# the revision is not `known_version`: a NULL one never equals it, so then it always does.
_SERVED_SNAPSHOT = (
    _snapshot_query()
    .add_columns(
        sa.case(
            (snapshots.c.revision == sa.bindparam("known_version", type_=sa.BigInteger), sa.null()),
            else_=iteration_results.c.document,
        ).label("document"),
        iteration_results.c.content_hash.label("iteration_hash"),
    )
    .join(iteration_results, iteration_results.c.iteration_id == snapshots.c.iteration_id)
    .where(
        snapshots.c.closing_id == sa.bindparam("closing_id"),
        closings.c.tenant_id == sa.bindparam("tenant_id"),
    )
)


async def load_snapshot(
    conn: AsyncConnection, tenant: uuid.UUID, closing: uuid.UUID, known_version: int | None = None
) -> SnapshotEntry | None:
    """The tenant's closing's served snapshot (the document with its reviews), its version
    being the snapshot's revision; None when it is still `known_version` (the document is then
    not even read from disk). NotFound for a foreign closing or before a success."""
    values = {"closing_id": closing, "tenant_id": tenant, "known_version": known_version}
    row = (await conn.execute(_SERVED_SNAPSHOT, values)).first()
    if row is None:
        await check_closing(conn, tenant, closing)
        raise NotFound(f"closing {closing} has no snapshot yet (no iteration has succeeded)")
    if row.document is None:
        return None
    body, content_hash = await compose(conn, closing, row.document, row.iteration_hash)
    return SnapshotEntry(row.revision, content_hash, str(row.client_id), body)


# The most closings of one client whose cached snapshots a reference-data change confirms (the
# most recently published): the others' entries are dropped, so the invalidation stays bounded.
MOST_CONFIRMED = 500
_SERVED_REVISIONS = (
    sa.select(snapshots.c.closing_id, snapshots.c.revision)
    .join(closings, closings.c.id == snapshots.c.closing_id)
    .where(
        closings.c.tenant_id == sa.bindparam("tenant_id"),
        closings.c.client_id == sa.bindparam("client_id"),
    )
    .order_by(snapshots.c.published_at.desc())
    .limit(MOST_CONFIRMED)
)


async def served_revisions(
    conn: AsyncConnection, tenant: uuid.UUID, client: uuid.UUID
) -> dict[str, int]:
    """Closing id → the revision of its served snapshot, for the client's most recently
    published closings (at most MOST_CONFIRMED)."""
    rows = await conn.execute(_SERVED_REVISIONS, {"tenant_id": tenant, "client_id": client})
    return {str(row.closing_id): row.revision for row in rows}


async def owner(conn: AsyncConnection, closing: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """(tenant, client) of a closing."""
    row = (
        await conn.execute(
            sa.select(closings.c.tenant_id, closings.c.client_id).where(closings.c.id == closing)
        )
    ).one()
    return row.tenant_id, row.client_id


async def open_snapshots(conn: AsyncConnection) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant, closing) of every open closing with a snapshot, for `cache warm`."""
    rows = await conn.execute(
        _snapshot_query().where(closings.c.status == "open").order_by(closings.c.id)
    )
    return [(row.tenant_id, row.id) for row in rows]


async def recent_snapshots(
    conn: AsyncConnection, window_seconds: float, limit: int = 5000
) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    """(tenant, closing, version) of the snapshots published in the last `window_seconds`."""
    rows = await conn.execute(
        _snapshot_query()
        .where(
            snapshots.c.published_at
            > sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, window_seconds)
        )
        .order_by(snapshots.c.published_at.desc())
        .limit(limit)
    )
    return [(row.tenant_id, row.id, row.revision) for row in rows]
