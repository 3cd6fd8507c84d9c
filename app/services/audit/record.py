"""Writing the audit trail: the rows of a change are appended in the change's own transaction,
in one statement however many there are (a bulk PUT of 10,000 accounts is one INSERT)."""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from app.adapters.postgres.tables import audit_events

CLI_ROLE = "operator"  # the command line acts with the server's own database access


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an API key (id, name, role) on behalf of its tenant, or the command
    line; and the request it came in, when there is one."""

    tenant_id: uuid.UUID
    key_name: str
    role: str
    key_id: uuid.UUID | None = None
    request_id: str | None = None

    @classmethod
    def command_line(cls, tenant_id: uuid.UUID) -> Actor:
        """The operator running `ledger-incidences` (named by the OS user, as best known)."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (containers running as a bare uid)
            user = "unknown"
        return cls(tenant_id, f"cli:{user}", CLI_ROLE)


@dataclass(frozen=True)
class Change:
    """One audited change of one resource; `details` says what changed (before/after)."""

    action: str
    resource_type: str
    resource_id: str
    details: Mapping[str, Any] = field(default_factory=dict)
    client_id: uuid.UUID | None = None
    closing_id: uuid.UUID | None = None


def field_changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """{field: {"before": old, "after": new}} for every field whose value differs."""
    old = before or {}
    return {
        name: {"before": old.get(name), "after": value}
        for name, value in after.items()
        if old.get(name) != value
    }


def _json(details: Mapping[str, Any]) -> str:
    # OPT_NON_STR_KEYS: column names read back from SQLAlchemy rows are str subclasses.
    return orjson.dumps(details, option=orjson.OPT_NON_STR_KEYS).decode()


async def record(conn: AsyncConnection, actor: Actor, changes: Sequence[Change]) -> None:
    """Append one row per change, in one statement, in the caller's transaction."""
    if not changes:
        return
    columns: dict[str, tuple[TypeEngine[Any], list[Any]]] = {
        "action": (pg.ARRAY(sa.Text), [c.action for c in changes]),
        "resource_type": (pg.ARRAY(sa.Text), [c.resource_type for c in changes]),
        "resource_id": (pg.ARRAY(sa.Text), [c.resource_id for c in changes]),
        "client_id": (pg.ARRAY(pg.UUID(as_uuid=True)), [c.client_id for c in changes]),
        "closing_id": (pg.ARRAY(pg.UUID(as_uuid=True)), [c.closing_id for c in changes]),
        "details": (pg.ARRAY(sa.Text), [_json(c.details) for c in changes]),
    }
    rows = (
        sa.func.unnest(*(sa.literal(values, kind) for kind, values in columns.values()))
        .table_valued(*columns)
        .render_derived()
    )
    await conn.execute(
        sa.insert(audit_events).from_select(
            [
                "tenant_id",
                "actor_key_id",
                "actor_name",
                "actor_role",
                "request_id",
                *columns,
            ],
            sa.select(
                sa.literal(actor.tenant_id, pg.UUID(as_uuid=True)),
                sa.literal(actor.key_id, pg.UUID(as_uuid=True)),
                sa.literal(actor.key_name),
                sa.literal(actor.role),
                sa.literal(actor.request_id, sa.Text),
                rows.c.action,
                rows.c.resource_type,
                rows.c.resource_id,
                rows.c.client_id,
                rows.c.closing_id,
                sa.cast(rows.c.details, pg.JSONB),
            ),
        )
    )
