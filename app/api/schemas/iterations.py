"""Iteration bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.api.schemas import Amount, StrictModel, Text
from app.services.iterations.request import MAX_COALESCED_TRIGGERS


class Figures(BaseModel):
    """The figures of an incidence a diff compares."""

    movement_count: int
    debit_total: Amount
    credit_total: Amount


class Change(BaseModel):
    """An incidence in both iterations whose figures differ."""

    key: str
    before: Figures
    after: Figures


class Diff(BaseModel):
    """What changed between two iterations' incidences (SPEC §4); lists are sorted by key."""

    new: list[str] = Field(description="Keys only in the later iteration")
    resolved: list[str] = Field(description="Keys only in the earlier iteration")
    changed: list[Change]
    unchanged: int = Field(description="Keys in both with the same figures")


class DiffBetween(Diff):
    """The diff between two succeeded iterations, `from` → `to`."""

    from_: int = Field(alias="from")
    to: int


class IterationOut(BaseModel):
    id: uuid.UUID
    closing_id: uuid.UUID
    number: int
    trigger: str
    coalesced_triggers: list[str] = Field(
        description="Every trigger merged into this iteration while it was queued, in order of "
        f"arrival, repeats included (the newest {MAX_COALESCED_TRIGGERS:,})"
    )
    status: str = Field(description="queued → running → succeeded | failed")
    progress: float = Field(ge=0, le=1)
    requested_by: str | None
    notes: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    movements_processed: int
    error: dict[str, Any] | None = Field(description="problem details when the run failed")
    summary: dict[str, Any] | None
    diff: Diff | None = Field(
        description="Against the previous succeeded iteration; null until this one succeeds"
    )


class ReprocessIn(StrictModel):
    notes: Text | None = Field(default=None, max_length=2000)
