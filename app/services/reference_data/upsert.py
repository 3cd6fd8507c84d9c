"""A client's reference data: chart of accounts and document types, bulk-upserted from JSON or CSV.

A PUT is an upsert: rows absent from the request are kept. Optional fields (`name_en`,
`classification`) are only changed when the request carries them; an empty value clears them.
"""

from __future__ import annotations

import csv
import io
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import accounts, clients, document_types
from app.domain.errors import InvalidInput, NotFound
from app.domain.ledger.sniff import detect_delimiter
from app.resources import Resources
from app.services.iterations.request import enqueue
from app.services.reference_data.reprocessing import reprocess_affected_closings
from app.services.snapshot_cache import writes as cache_writes
from app.services.tenancy.api_keys import Principal
from app.services.tenancy.clients import get_client

MAX_ITEMS = 20_000
MAX_CODE_LENGTH = 100
MAX_TEXT_LENGTH = 500
_MAX_PROBLEMS_SHOWN = 20
_MAX_LENGTH = {"code": MAX_CODE_LENGTH}

# CSV header aliases per field, matched after trimming, lower-casing, dropping accents and
# turning spaces/hyphens into `_`. The first alias present in the header wins.
ACCOUNT_ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("code", "account_code", "account", "codigo_cuenta", "cuenta", "codigo"),
    "name": ("name", "account_name", "nombre_cuenta", "nombre"),
    "name_en": ("name_en", "english_name", "account_name_en", "nombre_en", "nombre_ingles"),
    "classification": ("classification", "account_classification", "clasificacion"),
}
DOCUMENT_TYPE_ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("code", "document_type", "doc_type", "tipo_documento", "tipo_doc", "codigo"),
    "name": ("name", "document_type_name", "description", "nombre", "descripcion"),
}


@dataclass(frozen=True)
class Kind:
    """One kind of reference data: its table, CSV aliases, optional fields and code rule."""

    table: sa.Table
    aliases: Mapping[str, tuple[str, ...]]
    optional: tuple[str, ...]
    upper_codes: bool


ACCOUNTS = Kind(accounts, ACCOUNT_ALIASES, ("name_en", "classification"), upper_codes=False)
DOCUMENT_TYPES = Kind(document_types, DOCUMENT_TYPE_ALIASES, (), upper_codes=True)


@dataclass(frozen=True)
class Entry:
    """One incoming row: where it came from (for error messages) and the fields it sets."""

    where: str
    values: Mapping[str, str | None]


@dataclass(frozen=True)
class Plan:
    """What an upsert changes: new codes, changed codes with their changed fields, rows to write."""

    created: list[str]
    changed: dict[str, frozenset[str]]
    rows: list[dict[str, str | None]]


def _header_key(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.strip().lower())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return "_".join(plain.replace("-", " ").split())


def _decode(body: bytes) -> str:
    if b"\x00" in body:
        raise InvalidInput(
            "The CSV body has NUL bytes: it is binary or UTF-16; send UTF-8 or Windows-1252 text"
        )
    for encoding in ("utf-8-sig", "cp1252"):  # utf-8-sig also reads UTF-8 without a BOM
        try:
            return body.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("The CSV body is neither UTF-8 nor Windows-1252 text")


def _resolve_columns(
    header: Sequence[str], aliases: Mapping[str, tuple[str, ...]], column_map: Mapping[str, str]
) -> dict[str, int]:
    """Field → column index; raises naming the missing required fields and the header found."""
    unknown = sorted(set(column_map) - set(aliases))
    if unknown:
        raise InvalidInput(f"column_map names unknown fields {unknown}; known: {list(aliases)}")
    keys = [_header_key(h) for h in header]
    columns: dict[str, int] = {}
    for field, names in aliases.items():
        wanted = [_header_key(column_map[field])] if field in column_map else names
        found = next((keys.index(name) for name in wanted if name in keys), None)
        if found is not None:
            columns[field] = found
    missing = [field for field in ("code", "name") if field not in columns]
    if missing:
        shown = ", ".join(repr(h) for h in header) or "(empty)"
        raise InvalidInput(
            f"The CSV lacks required columns: {', '.join(missing)}. Header found: {shown}"
        )
    return columns


def parse_csv(
    body: bytes,
    aliases: Mapping[str, tuple[str, ...]],
    column_map: Mapping[str, str] | None = None,
) -> list[Entry]:
    """CSV rows as entries; `line` counts records with the header as line 1; blank rows skipped."""
    text = _decode(body)
    if not text.strip():
        raise InvalidInput("The CSV body is empty: a header line is required")
    delimiter = detect_delimiter(text.split("\n", 1)[0])
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise InvalidInput(f"The CSV body cannot be read: {exc}") from None
    columns = _resolve_columns(records[0], aliases, column_map or {})
    entries = []
    for line, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        values = {f: record[i].strip() if i < len(record) else "" for f, i in columns.items()}
        entries.append(Entry(f"line {line}", values))
    return entries


def normalise(
    entries: Sequence[Entry], *, optional: Sequence[str] = (), upper_codes: bool = False
) -> dict[str, dict[str, str | None]]:
    """Validated rows keyed by normalised code; every problem is reported in one InvalidInput."""
    if len(entries) > MAX_ITEMS:
        raise InvalidInput(f"Too many rows: {len(entries)} (at most {MAX_ITEMS} per request)")
    problems: list[str] = []
    rows: dict[str, dict[str, str | None]] = {}
    seen: dict[str, list[str]] = {}
    for entry in entries:
        code = (entry.values.get("code") or "").strip()
        code = code.upper() if upper_codes else code
        name = (entry.values.get("name") or "").strip()
        row: dict[str, str | None] = {"code": code, "name": name}
        for field in optional:
            if field in entry.values:
                row[field] = (entry.values[field] or "").strip() or None
        for field, value in row.items():
            if field in ("code", "name") and not value:
                problems.append(f"{entry.where}: {field} is empty")
            elif value and "\x00" in value:  # Postgres text cannot hold it
                problems.append(f"{entry.where}: {field} contains a NUL character")
            elif value and len(value) > (limit := _MAX_LENGTH.get(field, MAX_TEXT_LENGTH)):
                problems.append(f"{entry.where}: {field} is longer than {limit} characters")
        if code:
            seen.setdefault(code, []).append(entry.where)
            rows[code] = row
    problems += [
        f"duplicate code {code!r} at {', '.join(where)}"
        for code, where in seen.items()
        if len(where) > 1
    ]
    if problems:
        more = len(problems) - _MAX_PROBLEMS_SHOWN
        shown = "; ".join(problems[:_MAX_PROBLEMS_SHOWN]) + (
            f"; and {more} more" if more > 0 else ""
        )
        raise InvalidInput(f"Invalid rows: {shown}")
    return rows


def plan_changes(
    existing: Mapping[str, Mapping[str, str | None]],
    incoming: Mapping[str, Mapping[str, str | None]],
    optional: Sequence[str] = (),
) -> Plan:
    """Compare the request with the stored rows; unchanged rows are neither created nor updated."""
    created: list[str] = []
    changed: dict[str, frozenset[str]] = {}
    rows: list[dict[str, str | None]] = []
    for code, row in incoming.items():
        before = existing.get(code)
        if before is None:
            created.append(code)
            rows.append({**dict.fromkeys(optional), **row})
            continue
        after = {**before, **row}
        fields = frozenset(f for f, value in after.items() if before.get(f) != value)
        if fields:
            changed[code] = fields
            rows.append(after)
    return Plan(created, changed, rows)


def accounts_trigger(plan: Plan) -> str | None:
    """The reprocessing trigger of a chart change (SPEC §5), or None when nothing changed."""
    if plan.created:
        return "accounts_updated"
    fields = frozenset().union(*plan.changed.values())
    if not fields:
        return None
    if fields == {"classification"}:
        return "classification_updated"
    if fields == {"name_en"}:
        return "english_names_updated"
    return "accounts_updated"


async def _lock_client(conn: AsyncConnection, tenant_id: uuid.UUID, client_id: uuid.UUID) -> None:
    """Serialise reference-data writes of one client so the created/updated counts are exact.

    FOR NO KEY UPDATE does not block inserts that merely reference the client (closings).
    """
    found = await conn.scalar(
        sa.select(clients.c.id)
        .where(clients.c.id == client_id, clients.c.tenant_id == tenant_id)
        .with_for_update(key_share=True)
    )
    if found is None:
        raise NotFound(f"client {client_id} not found")


def _text_array(values: Iterable[str | None]) -> sa.ColumnElement[Any]:
    return sa.literal(list(values), pg.ARRAY(sa.Text))


async def _existing(
    conn: AsyncConnection, table: sa.Table, client_id: uuid.UUID, codes: Iterable[str]
) -> dict[str, dict[str, str | None]]:
    rows = await conn.execute(
        sa.select(*(c for c in table.c if c.name not in ("client_id", "updated_at"))).where(
            table.c.client_id == client_id, table.c.code == sa.any_(_text_array(codes))
        )
    )
    return {row.code: dict(row._mapping) for row in rows}


async def _upsert(
    conn: AsyncConnection, table: sa.Table, client_id: uuid.UUID, rows: list[dict[str, Any]]
) -> None:
    """One INSERT … ON CONFLICT DO UPDATE from unnested arrays, whatever the number of rows."""
    if not rows:
        return
    fields = list(rows[0])
    source = (
        sa.func.unnest(*(_text_array(row[f] for row in rows) for f in fields))
        .table_valued(*fields)
        .render_derived()
    )
    client = sa.literal(client_id, pg.UUID(as_uuid=True))
    insert = pg.insert(table).from_select(
        ["client_id", *fields], sa.select(client, *(source.c[f] for f in fields))
    )
    updates = {f: insert.excluded[f] for f in fields if f != "code"}
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.client_id, table.c.code],
            set_={**updates, "updated_at": sa.func.now()},
        )
    )


def _trigger(kind: Kind, plan: Plan) -> str | None:
    if kind is ACCOUNTS:
        return accounts_trigger(plan)
    return "document_types_updated" if plan.rows else None


async def put_reference_data(
    resources: Resources,
    principal: Principal,
    client_id: uuid.UUID,
    kind: Kind,
    entries: Sequence[Entry],
    request_id: str | None = None,
) -> dict[str, Any]:
    """Upsert the rows and re-process the affected closings, queued once the change is committed."""
    incoming = normalise(entries, optional=kind.optional, upper_codes=kind.upper_codes)
    queued: list[dict[str, Any]] = []
    async with resources.engine.begin() as conn:
        await _lock_client(conn, principal.tenant_id, client_id)
        existing = await _existing(conn, kind.table, client_id, incoming)
        plan = plan_changes(existing, incoming, kind.optional)
        await _upsert(conn, kind.table, client_id, plan.rows)
        trigger = _trigger(kind, plan)
        touched = [*plan.created, *plan.changed]
        if trigger is not None:
            queued = await reprocess_affected_closings(
                conn,
                tenant_id=principal.tenant_id,
                client_id=client_id,
                trigger=trigger,
                requested_by=principal.key_name,
                request_id=request_id,
                account_codes=touched if kind is ACCOUNTS else (),
                document_type_codes=touched if kind is DOCUMENT_TYPES else (),
            )
    # Workers must find the iterations committed, so the jobs are queued only now.
    await enqueue(resources, queued)
    if trigger is not None:  # committed: no process may serve this client's cached snapshots
        await cache_writes.invalidate_client(resources, principal.tenant_id, client_id)
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
