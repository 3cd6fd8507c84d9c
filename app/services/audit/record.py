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

from app.adapters.postgres.tables import TEXT_ARRAY, UUID_ARRAY, audit_events

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
    await conn.execute(
        _RECORD,
        {
            "p_tenant_id": actor.tenant_id,
            "p_actor_key_id": actor.key_id,
            "p_actor_name": actor.key_name,
            "p_actor_role": actor.role,
            "p_request_id": actor.request_id,
            "p_action": [c.action for c in changes],
            "p_resource_type": [c.resource_type for c in changes],
            "p_resource_id": [c.resource_id for c in changes],
            "p_client_id": [c.client_id for c in changes],
            "p_closing_id": [c.closing_id for c in changes],
            "p_details": [_json(c.details) for c in changes],
        },
    )


# Built once, with named parameters (every write records): the actor's fields, and one array
# per column of the changes, unnested into rows.
_UUID = pg.UUID(as_uuid=True)
_CHANGE_COLUMNS: dict[str, TypeEngine[Any]] = {
    "action": TEXT_ARRAY,
    "resource_type": TEXT_ARRAY,
    "resource_id": TEXT_ARRAY,
    "client_id": UUID_ARRAY,
    "closing_id": UUID_ARRAY,
    "details": TEXT_ARRAY,
}
_CHANGES = (
    sa.func.unnest(*(sa.bindparam(f"p_{name}", type_=as_) for name, as_ in _CHANGE_COLUMNS.items()))
    .table_valued(*_CHANGE_COLUMNS)
    .render_derived()
)
_RECORD = sa.insert(audit_events).from_select(
    ["tenant_id", "actor_key_id", "actor_name", "actor_role", "request_id", *_CHANGE_COLUMNS],
    sa.select(
        sa.bindparam("p_tenant_id", type_=_UUID),
        sa.bindparam("p_actor_key_id", type_=_UUID),
        sa.bindparam("p_actor_name", type_=sa.Text),
        sa.bindparam("p_actor_role", type_=sa.Text),
        sa.bindparam("p_request_id", type_=sa.Text),
        _CHANGES.c.action,
        _CHANGES.c.resource_type,
        _CHANGES.c.resource_id,
        _CHANGES.c.client_id,
        _CHANGES.c.closing_id,
        sa.cast(_CHANGES.c.details, pg.JSONB),
    ),
)
