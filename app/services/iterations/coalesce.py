"""Coalescing: a request for a closing whose iteration is still queued is merged into it
(SPEC §5/§6) instead of queueing another run."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import TEXT_ARRAY, UUID_ARRAY, closings, iterations, ledgers

MAX_NOTES_LENGTH = 10_000
# A script hammering reprocess (or a burst of chart edits) while a run waits must not grow one
# row without bound: past this many entries the oldest merged triggers are dropped.
MAX_COALESCED_TRIGGERS = 1_000

# The iteration's columns the API shows (request.to_resource).
PUBLIC = (
    iterations.c.id,
    iterations.c.closing_id,
    iterations.c.number,
    iterations.c.trigger,
    iterations.c.coalesced_triggers,
    iterations.c.status,
    iterations.c.progress,
    iterations.c.requested_by,
    iterations.c.notes,
    iterations.c.queued_at,
    iterations.c.started_at,
    iterations.c.finished_at,
    iterations.c.movements_processed,
    iterations.c.error,
    iterations.c.summary,
    iterations.c.diff,
    iterations.c.parse,
    iterations.c.attempts,
)


def with_trigger(trigger: sa.ColumnElement[str]) -> sa.ColumnElement[Any]:
    """coalesced_triggers once `trigger` is merged: every merged trigger is recorded, in order
    of arrival, repeats (of the iteration's own trigger too) included; only the newest
    MAX_COALESCED_TRIGGERS are kept."""
    held = iterations.c.coalesced_triggers
    count = sa.func.cardinality(held)
    appended = sa.func.array_append(held, trigger, type_=held.type)
    return appended[sa.func.greatest(count + 2 - MAX_COALESCED_TRIGGERS, 1) : count + 1]


def merged_notes(queued: Any, notes: str | None, requested_by: str | None) -> str | None:
    """The queued iteration's notes once a request with `notes` is merged into it.

    Notes are never lost: empty notes take the request's; otherwise the request's are appended
    on a new line, prefixed with its requester (`name: text`) when that is not the iteration's
    own `requested_by`. A note already there is not repeated, and the whole stays within
    MAX_NOTES_LENGTH (the earliest notes are kept).
    """
    if not notes or not notes.strip():
        return queued.notes
    line = notes if requested_by == queued.requested_by else f"{requested_by or '?'}: {notes}"
    if not queued.notes:
        return line[:MAX_NOTES_LENGTH]
    if f"\n{line}\n" in f"\n{queued.notes}\n":
        return queued.notes
    return f"{queued.notes}\n{line}"[:MAX_NOTES_LENGTH]


def current_parse(closing_id: sa.ColumnElement[uuid.UUID]) -> sa.ScalarSelect[Any]:
    """How the closing's current ledger is read, as far as known (see migration 0008)."""
    return (
        sa.select(ledgers.c.parse)
        .join(closings, closings.c.ledger_id == ledgers.c.id)
        .where(closings.c.id == closing_id)
        .scalar_subquery()
    )


async def merge(
    conn: AsyncConnection,
    queued: Sequence[Any],
    trigger: str,
    notes: str | None,
    requested_by: str | None,
) -> Sequence[Any]:
    """Merge a request into these queued iterations (locked by the caller): one UPDATE from
    the unnested arrays of their ids and merged notes."""
    values = {
        "merged_trigger": trigger,
        "merged_ids": [row.id for row in queued],
        "merged_notes": [merged_notes(row, notes, requested_by) for row in queued],
    }
    return (await conn.execute(_MERGE, values)).all()


async def merge_into_queued(
    conn: AsyncConnection, closing_ids: Sequence[uuid.UUID], trigger: str
) -> Sequence[Any]:
    """Merge a request without notes (a reference-data change) into the queued iteration of
    each of these closings that has one, in one statement, and without the closings' locks.

    Only the queued rows are locked (FOR NO KEY UPDATE), in closing order, re-checked after a
    wait, so a row a worker claimed meanwhile is skipped. A caller that holds closings' locks
    must have taken them before: rows after closings, as request_iterations does, or two
    transactions could wait for each other.
    """
    values = {"merged_trigger": trigger, "closing_ids": list(closing_ids)}
    return (await conn.execute(_MERGE_INTO_QUEUED, values)).all()


def _merging(rows: sa.ColumnElement[bool], **values: Any) -> sa.Update:
    """The UPDATE that merges the `merged_trigger` parameter into these rows, refreshes their
    ledger's parse and sets `values`, returning what the API shows of them."""
    return (
        sa.update(iterations)
        .where(rows)
        .values(
            coalesced_triggers=with_trigger(sa.bindparam("merged_trigger", type_=sa.Text)),
            parse=current_parse(iterations.c.closing_id),
            **values,
        )
        .returning(*PUBLIC)
    )


# Both merges are built once, with named parameters: building them (and their cache keys) on
# every request was a tenth of a reference-data change's CPU. Arrays, not a VALUES list, carry
# the notes: SQLAlchemy caches no statement with VALUES rows.
_MERGES = (
    sa.func.unnest(
        sa.bindparam("merged_ids", type_=UUID_ARRAY),
        sa.bindparam("merged_notes", type_=TEXT_ARRAY),
    )
    .table_valued(sa.column("id", pg.UUID(as_uuid=True)), sa.column("notes", sa.Text))
    .render_derived(name="merges")
)
_MERGE = _merging(iterations.c.id == _MERGES.c.id, notes=_MERGES.c.notes)
_QUEUED = (
    sa.select(iterations.c.id)
    .where(
        iterations.c.closing_id == sa.any_(sa.bindparam("closing_ids", type_=UUID_ARRAY)),
        iterations.c.status == "queued",
    )
    .order_by(iterations.c.closing_id)
    .with_for_update(key_share=True)
    .subquery("queued")
)
_MERGE_INTO_QUEUED = _merging(iterations.c.id == _QUEUED.c.id)
