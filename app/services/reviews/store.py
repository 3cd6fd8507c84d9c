"""Reviews of a closing's incidences: reading them, and recording one (audited, raising the
served snapshot's revision, since reviews show on it)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import (
    incidence_reviews,
    iteration_results,
    iterations,
    snapshots,
)
from app.domain.errors import NotFound
from app.domain.review import ACKNOWLEDGED, Review
from app.resources import Resources
from app.services.audit.record import Actor, Change, record
from app.services.snapshot_cache.served import load_reviews
from app.services.snapshot_cache.writes import refresh
from app.services.tenancy.closings import check_closing, lock_open_closing

MAX_NOTE_LENGTH = 2000


async def served_incidences(
    conn: AsyncConnection, closing_id: uuid.UUID
) -> tuple[int, list[dict[str, Any]]]:
    """(iteration, incidences) of the closing's served snapshot; (0, []) before any."""
    row = (
        await conn.execute(
            sa.select(iterations.c.number, iteration_results.c.document)
            .select_from(snapshots)
            .join(iterations, iterations.c.id == snapshots.c.iteration_id)
            .join(iteration_results, iteration_results.c.iteration_id == snapshots.c.iteration_id)
            .where(snapshots.c.closing_id == closing_id)
        )
    ).first()
    if row is None:
        return 0, []
    # A large snapshot takes a while to parse: not on the event loop.
    document = await asyncio.to_thread(orjson.loads, row.document)
    return row.number, document["incidences"]


def review_resource(review: Review) -> dict[str, Any]:
    """A stored review as the API shows it."""
    return {
        "key": review.key,
        "status": review.status,
        "note": review.note,
        "by": review.by,
        "at": review.at,
        "iteration": review.iteration,
        "movement_count": review.movement_count,
        "debit_total": str(review.debit_total),
        "credit_total": str(review.credit_total),
    }


async def list_reviews(
    conn: AsyncConnection, tenant_id: uuid.UUID, closing_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The closing's reviews, by key."""
    await check_closing(conn, tenant_id, closing_id)
    reviews = await load_reviews(conn, closing_id)
    return [review_resource(reviews[key]) for key in sorted(reviews)]


async def put_review(
    resources: Resources,
    actor: Actor,
    closing_id: uuid.UUID,
    key: str,
    status: str,
    note: str | None,
) -> dict[str, Any]:
    """Acknowledge or reopen an incidence of the served snapshot; audited with the review's
    before/after. 404 for a key the snapshot lacks, 409 on a closed closing. The snapshot is
    served with the review before this returns, as after a publish."""
    async with resources.engine.begin() as conn:
        saved = await _save_review(conn, actor, closing_id, key, status, note)
    await refresh(resources, actor.tenant_id, closing_id)
    return saved


async def _save_review(
    conn: AsyncConnection,
    actor: Actor,
    closing_id: uuid.UUID,
    key: str,
    status: str,
    note: str | None,
) -> dict[str, Any]:
    closing = await lock_open_closing(conn, actor.tenant_id, closing_id)
    iteration, incidences = await served_incidences(conn, closing_id)
    incidence = next((i for i in incidences if i["key"] == key), None)
    if incidence is None:
        raise NotFound(f"no incidence {key!r} in the snapshot of closing {closing_id}")
    before = (await load_reviews(conn, closing_id)).get(key)
    values = {
        "status": status,
        "note": note,
        "reviewed_by": actor.key_name,
        "reviewed_at": sa.func.now(),
        "iteration": iteration,
        "movement_count": incidence["movement_count"],
        "debit_total": Decimal(incidence["debit_total"]),
        "credit_total": Decimal(incidence["credit_total"]),
    }
    saved = (
        await conn.execute(
            insert(incidence_reviews)
            .values(closing_id=closing_id, key=key, **values)
            .on_conflict_do_update(index_elements=["closing_id", "key"], set_=values)
            .returning(incidence_reviews.c.reviewed_at)
        )
    ).scalar_one()
    await conn.execute(
        sa.update(snapshots)
        .where(snapshots.c.closing_id == closing_id)
        .values(revision=snapshots.c.revision + 1)
    )
    details = {
        "status": {"before": before.status if before else None, "after": status},
        "note": {"before": before.note if before else None, "after": note},
        "iteration": iteration,
    }
    action = "review.acknowledged" if status == ACKNOWLEDGED else "review.reopened"
    reviewed = Change(action, "incidence", key, details, closing.client_id, closing_id)
    await record(conn, actor, [reviewed])
    return review_resource(
        Review(
            key,
            status,
            note,
            actor.key_name,
            saved,
            iteration,
            values["movement_count"],
            values["debit_total"],
            values["credit_total"],
        )
    )
