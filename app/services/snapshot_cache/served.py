"""The snapshot as served: the iteration's stored document with the closing's reviews on its
incidences (SPEC §10), composed where a served body is made (publish, cache fill, review)."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import incidence_reviews
from app.domain.review import Review, reviewed
from app.domain.snapshot import canonical_json


async def load_reviews(conn: AsyncConnection, closing_id: uuid.UUID) -> dict[str, Review]:
    """The closing's reviews by key."""
    rows = await conn.execute(
        sa.select(incidence_reviews).where(incidence_reviews.c.closing_id == closing_id)
    )
    return {
        row.key: Review(
            row.key,
            row.status,
            row.note,
            row.reviewed_by,
            row.reviewed_at,
            row.iteration,
            row.movement_count,
            row.debit_total,
            row.credit_total,
        )
        for row in rows
    }


# In every document published since reviews exist (its statistics count them; keys are sorted,
# and a quote inside a JSON string is escaped, so no text can contain this).
STATISTICS_WITH_REVIEWS = b'"reviews":{"acknowledged":'


async def compose(
    conn: AsyncConnection, closing_id: uuid.UUID, document: bytes, content_hash: str
) -> tuple[bytes, str]:
    """(served body, served content hash): the iteration's document (its incidences all open)
    as it is when the closing has no reviews, else recomposed with them (so is a document
    stored before reviews existed). The caller holds the closing's lock if reviews may change
    meanwhile."""
    reviews = await load_reviews(conn, closing_id)
    if not reviews and STATISTICS_WITH_REVIEWS in document:
        return document, content_hash
    # Parsing and dumping a large snapshot takes a while: not on the event loop.
    return await asyncio.to_thread(_compose, document, reviews)


def _compose(document: bytes, reviews: dict[str, Review]) -> tuple[bytes, str]:
    served = reviewed(orjson.loads(document), reviews)
    return canonical_json(served), served["content_hash"]
