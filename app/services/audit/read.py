"""Reading the audit trail: a tenant's events with filters, and one resource's history, in
keyset pages (newest first; the cursor is the last id seen)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import audit_events
from app.domain.errors import InvalidInput
from app.services.paging import keyset_page

_SHOWN = (
    audit_events.c.id,
    audit_events.c.at,
    audit_events.c.actor_key_id,
    audit_events.c.actor_name,
    audit_events.c.actor_role,
    audit_events.c.action,
    audit_events.c.resource_type,
    audit_events.c.resource_id,
    audit_events.c.client_id,
    audit_events.c.closing_id,
    audit_events.c.request_id,
    audit_events.c.details,
)


@dataclass(frozen=True)
class AuditFilters:
    """What GET /audit narrows to (every filter optional; they combine with AND)."""

    client_id: uuid.UUID | None = None
    closing_id: uuid.UUID | None = None
    actor: str | None = None  # the actor's name (an API key's name, or cli:<user>)
    action: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def _cursor(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise InvalidInput("cursor is not one this API returned")
    return int(text)


async def _page(
    conn: AsyncConnection, where: list[sa.ColumnElement[bool]], limit: int, cursor: str | None
) -> dict[str, Any]:
    after = _cursor(cursor)
    if after is not None:
        where = [*where, audit_events.c.id < after]
    rows = (
        await conn.execute(
            sa.select(*_SHOWN).where(*where).order_by(audit_events.c.id.desc()).limit(limit + 1)
        )
    ).all()
    return keyset_page([_event(row) for row in rows], limit, lambda item: str(item["id"]))


def _event(row: Any) -> dict[str, Any]:
    """An event as the API shows it; ids that do not apply are left out, not null."""
    data = dict(row._mapping)
    actor = {"key_id": data["actor_key_id"], "name": data["actor_name"], "role": data["actor_role"]}
    event = {
        "id": data["id"],
        "at": data["at"],
        "actor": {name: value for name, value in actor.items() if value is not None},
        "action": data["action"],
        "resource": {"type": data["resource_type"], "id": data["resource_id"]},
        "client_id": data["client_id"],
        "closing_id": data["closing_id"],
        "request_id": data["request_id"],
        "details": data["details"],
    }
    return {name: value for name, value in event.items() if value is not None}


async def list_events(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    filters: AuditFilters,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """The tenant's audit events, newest first."""
    where = [audit_events.c.tenant_id == tenant_id]
    if filters.client_id is not None:
        where.append(audit_events.c.client_id == filters.client_id)
    if filters.closing_id is not None:
        where.append(audit_events.c.closing_id == filters.closing_id)
    if filters.actor is not None:
        where.append(audit_events.c.actor_name == filters.actor)
    if filters.action is not None:
        where.append(audit_events.c.action == filters.action)
    if filters.since is not None:
        where.append(audit_events.c.at >= filters.since)
    if filters.until is not None:
        where.append(audit_events.c.at < filters.until)
    return await _page(conn, where, limit, cursor)


async def resource_history(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    client_id: uuid.UUID,
    resource: tuple[str, str],
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """The events of one (type, id) resource of a client of the tenant, newest first. The
    caller checks that the client is the tenant's."""
    where = [
        audit_events.c.tenant_id == tenant_id,
        audit_events.c.client_id == client_id,
        audit_events.c.resource_type == resource[0],
        audit_events.c.resource_id == resource[1],
    ]
    return await _page(conn, where, limit, cursor)
