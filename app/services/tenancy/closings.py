"""Closings: one per client and month, open or closed, always scoped to the caller's tenant."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import closings, iterations, snapshots
from app.domain.errors import Conflict, NotFound
from app.services.audit.record import Actor, Change, record
from app.services.paging import keyset_page
from app.services.tenancy.clients import get_client

_latest = (
    sa.select(iterations.c.number, iterations.c.status)
    .where(iterations.c.closing_id == closings.c.id)
    .order_by(iterations.c.number.desc())
    .limit(1)
    .lateral("latest")
)
_published = iterations.alias("published")

# The closing with its newest iteration and served snapshot: index lookups, no scans.
_RESOURCE = sa.select(
    closings.c.id,
    closings.c.client_id,
    closings.c.period,
    closings.c.status,
    closings.c.created_at,
    closings.c.updated_at,
    _latest.c.number.label("latest_number"),
    _latest.c.status.label("latest_status"),
    _published.c.number.label("snapshot_iteration"),
    snapshots.c.content_hash.label("snapshot_hash"),
).select_from(
    closings.outerjoin(_latest, sa.true())
    .outerjoin(snapshots, snapshots.c.closing_id == closings.c.id)
    .outerjoin(_published, _published.c.id == snapshots.c.iteration_id)
)


def _to_resource(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    latest_number, latest_status = data.pop("latest_number"), data.pop("latest_status")
    snapshot_iteration, snapshot_hash = data.pop("snapshot_iteration"), data.pop("snapshot_hash")
    data["latest_iteration"] = (
        {"number": latest_number, "status": latest_status} if latest_number is not None else None
    )
    data["snapshot"] = (
        {"iteration": snapshot_iteration, "content_hash": snapshot_hash}
        if snapshot_iteration is not None
        else None
    )
    return data


async def check_closing(conn: AsyncConnection, tenant_id: uuid.UUID, closing_id: uuid.UUID) -> None:
    """NotFound unless the closing exists and is the tenant's."""
    owned = {"id": closing_id, "tenant_id": tenant_id}
    found = (await conn.execute(_TENANTS_CLOSING_ID, owned)).first()
    if found is None:
        raise NotFound(f"closing {closing_id} not found")


async def lock_closing(conn: AsyncConnection, tenant_id: uuid.UUID, closing_id: uuid.UUID) -> Any:
    """Lock the tenant's closing row for this transaction (NotFound for other tenants).

    The row lock serialises what changes a closing across API replicas (numbering and
    coalescing its iterations, reviews, closing it); the partial unique indexes on iterations
    are the last line of defence. It is FOR NO KEY UPDATE (as are the publish's and the
    re-processing's): no closing's key ever changes, and unlike FOR UPDATE it lets rows that
    merely reference the closing (an upload's staged ledger row) be inserted meanwhile.
    """
    row = (
        await conn.execute(
            sa.select(closings)
            .where(closings.c.id == closing_id, closings.c.tenant_id == tenant_id)
            .with_for_update(key_share=True)
        )
    ).first()
    if row is None:
        raise NotFound(f"closing {closing_id} not found")
    return row


async def lock_open_closing(
    conn: AsyncConnection, tenant_id: uuid.UUID, closing_id: uuid.UUID
) -> Any:
    """lock_closing, and 409 if the closing is closed."""
    return _open(await lock_closing(conn, tenant_id, closing_id))


async def check_open_closing(
    conn: AsyncConnection, tenant_id: uuid.UUID, closing_id: uuid.UUID
) -> Any:
    """The closing, if it is the tenant's (NotFound) and open (Conflict), without a lock."""
    row = (
        await conn.execute(
            sa.select(closings).where(
                closings.c.id == closing_id, closings.c.tenant_id == tenant_id
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"closing {closing_id} not found")
    return _open(row)


def _open(row: Any) -> Any:
    if row.status != "open":
        raise Conflict(f"closing {row.id} is closed; reopen it (PATCH status=open) first")
    return row


async def get_closing(
    conn: AsyncConnection, tenant_id: uuid.UUID, closing_id: uuid.UUID
) -> dict[str, Any]:
    """One closing of the tenant; another tenant's closing is NotFound, like a missing one."""
    row = (await conn.execute(_TENANTS_CLOSING, {"id": closing_id, "tenant_id": tenant_id})).first()
    if row is None:
        raise NotFound(f"closing {closing_id} not found")
    return _to_resource(row)


async def create_closing(
    conn: AsyncConnection, actor: Actor, client_id: uuid.UUID, period: str
) -> dict[str, Any]:
    """Open the client's closing of `period`, audited; 409 if the client already has one."""
    tenant_id = actor.tenant_id
    await get_client(conn, tenant_id, client_id)
    # DO NOTHING rather than catching the unique violation: the transaction stays usable.
    closing_id = await conn.scalar(
        pg.insert(closings)
        .values(tenant_id=tenant_id, client_id=client_id, period=period)
        .on_conflict_do_nothing(index_elements=[closings.c.client_id, closings.c.period])
        .returning(closings.c.id)
    )
    if closing_id is None:
        existing = await conn.scalar(
            sa.select(closings.c.id).where(
                closings.c.client_id == client_id, closings.c.period == period
            )
        )
        raise Conflict(f"client {client_id} already has closing {existing} for period {period}")
    created = Change(
        "closing.created", "closing", str(closing_id), {"period": period}, client_id, closing_id
    )
    await record(conn, actor, [created])
    return await get_closing(conn, tenant_id, closing_id)


# Built once, with named parameters: the checks and reads of most requests.
_OWNED = (closings.c.id == sa.bindparam("id"), closings.c.tenant_id == sa.bindparam("tenant_id"))
_TENANTS_CLOSING_ID = sa.select(closings.c.id).where(*_OWNED)
_TENANTS_CLOSING = _RESOURCE.where(*_OWNED)
_BEFORE = sa.bindparam("before", type_=sa.Text)
_CLIENTS_CLOSINGS = (
    _RESOURCE.where(
        closings.c.client_id == sa.bindparam("client_id"),
        closings.c.tenant_id == sa.bindparam("tenant_id"),
        # Keyset paging: the periods older than the last one shown (none: from the newest).
        sa.or_(_BEFORE.is_(None), closings.c.period < _BEFORE),
    )
    .order_by(closings.c.period.desc())
    .limit(sa.bindparam("rows", type_=sa.Integer))
)


async def list_closings(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    client_id: uuid.UUID,
    limit: int,
    before: str | None = None,
) -> dict[str, Any]:
    """A page of the client's closings, newest period first, older than period `before`:
    `items` and `next_cursor` (the last period shown; None on the last page)."""
    await get_client(conn, tenant_id, client_id)
    values = {"client_id": client_id, "tenant_id": tenant_id, "before": before, "rows": limit + 1}
    rows = (await conn.execute(_CLIENTS_CLOSINGS, values)).all()
    return keyset_page([_to_resource(row) for row in rows], limit, lambda item: item["period"])
