"""Accepting a ledger upload: validate synchronously, store durably, queue its iteration."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.adapters.postgres.ledger_store import layout_to_json
from app.adapters.postgres.tables import closings, ledgers
from app.adapters.queue import enqueue_parse_ahead
from app.domain.errors import Conflict
from app.domain.ledger.format import LedgerOptions
from app.domain.ledger.inspect import inspect_ledger
from app.domain.ledger.reader import parse_record
from app.resources import Resources
from app.services.audit.record import Actor, Change, record
from app.services.iterations import request as iterations
from app.services.tenancy.closings import check_open_closing, lock_open_closing
from app.services.uploads.spool import UploadSpool


@dataclass(frozen=True)
class ReceivedLedger:
    """A received upload: its ledger row (still `receiving`, its file stored already), its spool
    (local copy, digests) and form options."""

    ledger_id: uuid.UUID
    spool: UploadSpool
    filename: str | None
    options: LedgerOptions


async def announce_upload(
    resources: Resources,
    ledger_id: uuid.UUID,
    filename: str | None,
    options: LedgerOptions,
) -> None:
    """Have a worker parse the file while it is still arriving (iterations/parse_ahead.py)."""
    wire = {"decimal_separator": options.decimal_separator, "column_map": dict(options.column_map)}
    prefix = resources.settings.redis_key_prefix
    await enqueue_parse_ahead(resources.redis, prefix, ledger_id, filename, wire)


async def check_can_upload(resources: Resources, actor: Actor, closing_id: uuid.UUID) -> None:
    """404 or 409 before the upload's body is received, not after."""
    async with resources.reader.connect() as conn:
        await check_open_closing(conn, actor.tenant_id, closing_id)


async def accept_ledger(
    resources: Resources, actor: Actor, closing_id: uuid.UUID, upload: ReceivedLedger
) -> dict[str, Any]:
    """Validate the file, then make its stored ledger the closing's and queue its iteration, in
    one transaction (audited with the file's name, size and sha256); then queue the job.

    When validation fails the caller (uploads.receive_ledger) removes the stored file; once this
    returns, the upload survives restarts.
    """
    spool = upload.spool
    ledger_id = upload.ledger_id
    layout = await asyncio.to_thread(inspect_ledger, spool.path, upload.options)
    async with resources.engine.begin() as conn:
        closing = await lock_open_closing(conn, actor.tenant_id, closing_id)
        accepted = await conn.execute(
            sa.update(ledgers)
            .where(ledgers.c.id == ledger_id, ledgers.c.receiving)
            .values(
                filename=upload.filename,
                size_bytes=spool.size,
                sha256=spool.sha256,
                layout=layout_to_json(layout),
                parse=parse_record(layout, None),  # the rows are counted by the worker
                uploaded_by=actor.key_name,
                uploaded_at=sa.func.now(),
                receiving=False,
            )
        )
        if accepted.rowcount != 1:  # removed as abandoned (upload_store.ABANDONED_AFTER)
            raise Conflict(
                "The upload took so long that its stored part was removed; send it again"
            )
        await conn.execute(
            sa.update(closings)
            .where(closings.c.id == closing_id)
            .values(ledger_id=ledger_id, updated_at=sa.func.now())
        )
        iteration = await iterations.request_iteration(
            conn,
            closing_id,
            "ledger_replaced" if closing.ledger_id else "initial",
            requested_by=actor.key_name,
            request_id=actor.request_id,
        )
        details = {
            "filename": upload.filename,
            "size_bytes": spool.size,
            "sha256": spool.sha256,
            "iteration": iteration["number"],
        }
        uploaded = Change(
            "ledger.uploaded", "ledger", str(ledger_id), details, closing.client_id, closing_id
        )
        await record(conn, actor, [uploaded])
    await iterations.enqueue(resources, [iteration])
    return iteration
