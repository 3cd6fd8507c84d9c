"""A client's reference data: chart of accounts and document types, bulk-upserted from JSON or CSV.

A PUT is an upsert: rows absent from the request are kept. Optional fields (`name_en`,
`classification`) are only changed when the request carries them; an empty value clears them.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
)

from app.adapters.outages import rolled_back
from app.adapters.postgres.tables import TEXT_ARRAY, accounts, document_types
from app.resources import Resources
from app.services.audit.record import Actor, Change, field_changes, record
from app.services.iterations.request import enqueue
from app.services.reference_data.changes import (
    ACCOUNT_ALIASES,
    DOCUMENT_TYPE_ALIASES,
    Entry,
    Plan,
    accounts_trigger,
    normalise,
    plan_changes,
)
from app.services.reference_data.locks import lock_codes
from app.services.reference_data.reprocessing import ReprocessRaced, reprocess_affected_closings
from app.services.snapshot_cache import writes as cache_writes
from app.services.tenancy.clients import get_client


@dataclass(frozen=True)
class Kind:
    """One kind of reference data: its table, CSV aliases, optional fields and code rule, and
    its name in the audit trail."""

    table: sa.Table
    aliases: Mapping[str, tuple[str, ...]]
    optional: tuple[str, ...]
    upper_codes: bool
    resource: str


ACCOUNTS = Kind(
    accounts, ACCOUNT_ALIASES, ("name_en", "classification"), upper_codes=False, resource="account"
)
DOCUMENT_TYPES = Kind(
    document_types, DOCUMENT_TYPE_ALIASES, (), upper_codes=True, resource="document_type"
)


# The statements are built once per table (and set of fields), with named parameters: building
# them and their cache keys on every request was a fifth of an upsert's CPU.


@functools.cache
def _existing_query(table: sa.Table) -> sa.Select[Any]:
    return sa.select(*(c for c in table.c if c.name not in ("client_id", "updated_at"))).where(
        table.c.client_id == sa.bindparam("client_id"),
        table.c.code == sa.any_(sa.bindparam("codes", type_=TEXT_ARRAY)),
    )


async def _existing(
    conn: AsyncConnection, table: sa.Table, client_id: uuid.UUID, codes: Iterable[str]
) -> dict[str, dict[str, str | None]]:
    rows = await conn.execute(
        _existing_query(table), {"client_id": client_id, "codes": list(codes)}
    )
    return {row.code: dict(row._mapping) for row in rows}


@functools.cache
def _upsert_statement(table: sa.Table, fields: tuple[str, ...]) -> sa.Insert:
    """One INSERT … ON CONFLICT DO UPDATE from unnested arrays (parameters `v_<field>`, one
    array each, and `client_id`), whatever the number of rows."""
    source = (
        sa.func.unnest(*(sa.bindparam(f"v_{f}", type_=TEXT_ARRAY) for f in fields))
        .table_valued(*fields)
        .render_derived()
    )
    client = sa.bindparam("client_id", type_=pg.UUID(as_uuid=True))
    insert = pg.insert(table).from_select(
        ["client_id", *fields], sa.select(client, *(source.c[f] for f in fields))
    )
    updates = {f: insert.excluded[f] for f in fields if f != "code"}
    return insert.on_conflict_do_update(
        index_elements=[table.c.client_id, table.c.code],
        set_={**updates, "updated_at": sa.func.now()},
    )


async def _upsert(
    conn: AsyncConnection, table: sa.Table, client_id: uuid.UUID, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    fields = tuple(rows[0])
    values = {f"v_{f}": [row[f] for row in rows] for f in fields}
    await conn.execute(_upsert_statement(table, fields), {"client_id": client_id, **values})


def _trigger(kind: Kind, plan: Plan) -> str | None:
    if kind is ACCOUNTS:
        return accounts_trigger(plan)
    return "document_types_updated" if plan.rows else None


def _audited(
    kind: Kind, client_id: uuid.UUID, existing: Mapping[str, Mapping[str, Any]], plan: Plan
) -> list[Change]:
    """One change per created or updated code, with the before/after of each changed field."""
    changes = []
    for row in plan.rows:
        code = str(row["code"])
        before = existing.get(code)
        after = {name: value for name, value in row.items() if name != "code"}
        action = f"{kind.resource}.{'updated' if before else 'created'}"
        details = {"changes": field_changes(before, after)}
        changes.append(Change(action, kind.resource, code, details, client_id))
    return changes


async def _write(
    resources: Resources,
    actor: Actor,
    client_id: uuid.UUID,
    kind: Kind,
    incoming: Mapping[str, Mapping[str, str | None]],
) -> tuple[Plan, str | None, list[dict[str, Any]]]:
    """The upsert, its audit and the re-processing it calls for, in one transaction: (the plan,
    the trigger if any, the iterations queued or joined)."""
    queued: list[dict[str, Any]] = []
    async with resources.engine.begin() as conn:
        await lock_codes(conn, actor.tenant_id, client_id, kind.resource, incoming)
        existing = await _existing(conn, kind.table, client_id, incoming)
        plan = plan_changes(existing, incoming, kind.optional)
        await _upsert(conn, kind.table, client_id, plan.rows)
        await record(conn, actor, _audited(kind, client_id, existing, plan))
        trigger = _trigger(kind, plan)
        touched = [*plan.created, *plan.changed]
        if trigger is not None:
            queued = await reprocess_affected_closings(
                conn,
                tenant_id=actor.tenant_id,
                client_id=client_id,
                trigger=trigger,
                requested_by=actor.key_name,
                request_id=actor.request_id,
                account_codes=touched if kind is ACCOUNTS else (),
                document_type_codes=touched if kind is DOCUMENT_TYPES else (),
            )
    return plan, trigger, queued


async def put_reference_data(
    resources: Resources,
    actor: Actor,
    client_id: uuid.UUID,
    kind: Kind,
    entries: Sequence[Entry],
) -> dict[str, Any]:
    """Upsert the rows (audited) and re-process the affected closings, queued once the change
    is committed."""
    incoming = normalise(entries, optional=kind.optional, upper_codes=kind.upper_codes)
    # The transaction starts over (rarely, and never more than a few times) when a worker
    # claims a run the change was joining (ReprocessRaced), or Postgres broke a deadlock with it.
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(ReprocessRaced) | retry_if_exception(rolled_back),
        stop=stop_after_attempt(5),
        reraise=True,
    )
    written: tuple[Plan, str | None, list[dict[str, Any]]] = await retrying(
        _write, resources, actor, client_id, kind, incoming
    )
    plan, trigger, queued = written
    # Workers must find the iterations committed, so the jobs are queued only now; and now no
    # process may serve this client's cached snapshots. Both at once: neither waits for the other.
    after_commit = [enqueue(resources, queued)]
    if trigger is not None:
        after_commit.append(cache_writes.invalidate_client(resources, actor.tenant_id, client_id))
    await asyncio.gather(*after_commit)
    return {"created": len(plan.created), "updated": len(plan.changed), "iterations": queued}


def _blank(column: sa.Column[Any]) -> sa.ColumnElement[bool]:
    return sa.func.coalesce(sa.func.btrim(column), "") == ""


async def list_accounts(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    client_id: uuid.UUID,
    *,
    unclassified: bool = False,
    missing_english: bool = False,
) -> list[dict[str, Any]]:
    """The client's chart ordered by code; the filters combine with AND."""
    await get_client(conn, tenant_id, client_id)
    query = sa.select(*(c for c in accounts.c if c.name != "client_id")).where(
        accounts.c.client_id == client_id
    )
    if unclassified:
        query = query.where(_blank(accounts.c.classification))
    if missing_english:
        query = query.where(_blank(accounts.c.name_en))
    # Byte order ("C"), so listings do not depend on the server's locale.
    rows = await conn.execute(query.order_by(accounts.c.code.collate("C")))
    return [dict(row._mapping) for row in rows]


async def list_document_types(
    conn: AsyncConnection, tenant_id: uuid.UUID, client_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The client's document types ordered by code."""
    await get_client(conn, tenant_id, client_id)
    rows = await conn.execute(
        sa.select(*(c for c in document_types.c if c.name != "client_id"))
        .where(document_types.c.client_id == client_id)
        .order_by(document_types.c.code.collate("C"))
    )
    return [dict(row._mapping) for row in rows]
