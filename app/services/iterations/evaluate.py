"""Evaluating an iteration: reference data as it is now, rules, diff against the snapshot."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.postgres.lines_codec import pack_lines
from app.adapters.postgres.tables import accounts, closings, document_types
from app.domain.diff import assign_first_seen, diff_incidences
from app.domain.evaluation import Evaluation, evaluate
from app.domain.reference import Account, ReferenceData
from app.domain.review import reviewed
from app.domain.snapshot import canonical_json, unhashed_snapshot
from app.services.iterations.claims import Claim
from app.services.iterations.movements import PARSE_PROGRESS_SHARE, LoadedMovements
from app.services.iterations.publish import previous_result


@dataclass(frozen=True)
class IterationResult:
    """Everything publish() stores."""

    document: bytes
    content_hash: str
    lines: dict[str, memoryview]  # slices of one buffer packed by lines_codec
    summary: dict[str, Any]
    diff: dict[str, Any]


async def load_reference(engine: AsyncEngine, closing_id: Any) -> ReferenceData:
    """The client's chart and document types as they are now, and the closing's period."""
    async with engine.connect() as conn:
        closing = (
            await conn.execute(
                sa.select(closings.c.client_id, closings.c.period).where(
                    closings.c.id == closing_id
                )
            )
        ).one()
        chart = await conn.execute(
            sa.select(
                accounts.c.code, accounts.c.name, accounts.c.name_en, accounts.c.classification
            ).where(accounts.c.client_id == closing.client_id)
        )
        types = await conn.execute(
            sa.select(document_types.c.code, document_types.c.name).where(
                document_types.c.client_id == closing.client_id
            )
        )
        return ReferenceData(
            accounts={r.code: Account(r.name, r.name_en, r.classification) for r in chart},
            document_types={r.code: r.name for r in types},
            period=closing.period,
        )


async def evaluate_iteration(
    engine: AsyncEngine,
    claimed: Claim,
    loaded: LoadedMovements,
    reference: ReferenceData,
    max_incidences: int,
) -> IterationResult:
    """Run the rules against `reference` and build the snapshot document with first_seen and
    the diff."""
    async with engine.connect() as conn:
        previous = await previous_result(conn, claimed.closing_id)
    evaluation: Evaluation = await asyncio.to_thread(
        evaluate,
        loaded.narrow,
        reference,
        loaded.has_document_type,
        loaded.fetch_rows,
        max_incidences,
    )
    claimed.progress = max(claimed.progress, PARSE_PROGRESS_SHARE + 0.1)
    # Off the event loop too: a big ledger's thousands of incidences take seconds to shape.
    return await asyncio.to_thread(
        iteration_result,
        evaluation,
        previous,
        str(claimed.closing_id),
        claimed.number,
        datetime.now(UTC),
    )


def iteration_result(
    evaluation: Evaluation,
    previous: dict[str, Any] | None,
    closing_id: str,
    number: int,
    computed_at: datetime,
) -> IterationResult:
    """What iteration `number` stores of its evaluation: the snapshot document (first_seen
    carried from the `previous` document), its summary and lines, and the diff against it."""
    before = previous["incidences"] if previous else []
    incidences = assign_first_seen(evaluation.incidences, before or None, number)
    # Every incidence starts open: the closing's reviews are added when it is served. reviewed()
    # hashes the document with them.
    snapshot = reviewed(
        unhashed_snapshot(closing_id, number, evaluation.statistics, incidences, computed_at), {}
    )
    statistics = snapshot["statistics"]
    summary = {
        "content_hash": snapshot["content_hash"],
        **{
            name: statistics[name]
            for name in (
                "movements_total",
                "movements_rejected",
                "movements_with_incidences",
                "incidences_total",
                "by_severity",
                "by_type",
            )
        },
    }
    # One conversion of the flat line column, then a view of it per incidence.
    packed = pack_lines(evaluation.all_lines)
    lines = {
        key: packed[4 * offset : 4 * (offset + count)]
        for key, (offset, count) in evaluation.spans.items()
    }
    diff = diff_incidences(before, incidences).to_dict()
    return IterationResult(canonical_json(snapshot), snapshot["content_hash"], lines, summary, diff)
