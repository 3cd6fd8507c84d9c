"""Clients: the companies whose books are closed, always scoped to the caller's tenant."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import clients
from app.domain.errors import InvalidInput, NotFound
from app.services.audit.record import Actor, Change, record
from app.services.paging import keyset_page

_COLUMNS = (clients.c.id, clients.c.name, clients.c.tax_id, clients.c.created_at)


async def create_client(
    conn: AsyncConnection, actor: Actor, name: str, tax_id: str | None
) -> dict[str, Any]:
    """Insert a client of the actor's tenant, audited, and return it."""
    row = (
        await conn.execute(
            sa.insert(clients)
            .values(tenant_id=actor.tenant_id, name=name, tax_id=tax_id)
            .returning(*_COLUMNS)
        )
    ).one()
    details = {"name": name, "tax_id": tax_id}
    await record(conn, actor, [Change("client.created", "client", str(row.id), details, row.id)])
    return dict(row._mapping)


async def list_clients(
    conn: AsyncConnection, tenant_id: uuid.UUID, limit: int, after: uuid.UUID | None = None
) -> dict[str, Any]:
    """A page of the tenant's clients, oldest first, after client `after`: `items` and
    `next_cursor` (the last client's id; None on the last page). InvalidInput when `after` is
    not one of the tenant's clients."""
    values: dict[str, Any] = {"tenant_id": tenant_id, "rows": limit + 1}
    values["after_at"] = values["after_id"] = None
    if after is not None:
        start = (await conn.execute(_TENANTS_CLIENT, {"id": after, "tenant_id": tenant_id})).first()
        if start is None:
            raise InvalidInput(f"cursor {after} is not the next_cursor of a page of your clients")
        values["after_at"], values["after_id"] = start.created_at, start.id
    rows = (await conn.execute(_TENANTS_CLIENTS, values)).all()
    return keyset_page([dict(row._mapping) for row in rows], limit, lambda item: str(item["id"]))


# Keyset paging in creation order: the clients after the last one shown (none: from the first).
_AFTER_AT = sa.bindparam("after_at", type_=clients.c.created_at.type)
_TENANTS_CLIENTS = (
    sa.select(*_COLUMNS)
    .where(
        clients.c.tenant_id == sa.bindparam("tenant_id"),
        sa.or_(
            _AFTER_AT.is_(None),
            sa.tuple_(clients.c.created_at, clients.c.id)
            > sa.tuple_(_AFTER_AT, sa.bindparam("after_id", type_=clients.c.id.type)),
        ),
    )
    .order_by(clients.c.created_at, clients.c.id)
    .limit(sa.bindparam("rows", type_=sa.Integer))
)


# Built once, with named parameters: every request about a client reads it.
_TENANTS_CLIENT = sa.select(*_COLUMNS).where(
    clients.c.id == sa.bindparam("id"), clients.c.tenant_id == sa.bindparam("tenant_id")
)


async def get_client(
    conn: AsyncConnection, tenant_id: uuid.UUID, client_id: uuid.UUID
) -> dict[str, Any]:
    """One client of the tenant; another tenant's client is NotFound, like a missing one."""
    row = (await conn.execute(_TENANTS_CLIENT, {"id": client_id, "tenant_id": tenant_id})).first()
    if row is None:
        raise NotFound(f"client {client_id} not found")
    return dict(row._mapping)
