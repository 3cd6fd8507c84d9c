"""Iteration bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.api.schemas import Amount, StrictModel, Text
from app.services.iterations.coalesce import MAX_COALESCED_TRIGGERS


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


class ParseOut(BaseModel):
    """How the iteration's ledger file is read (SPEC §3). Until the worker has read the file,
    `rows_read` and `blank_rows_skipped` are null, and so is `decimal_separator` when it is to
    be detected from the amounts (`decimal_separator_detected` true)."""

    kind: str = Field(description="csv or xlsx")
    encoding: str | None = Field(description="utf-8, utf-8-sig or cp1252; null for XLSX")
    delimiter: str | None = Field(description=", ; or a tab; null for XLSX")
    decimal_separator: str | None = Field(description=". or ,")
    decimal_separator_detected: bool = Field(
        description="detected from the file's amounts (the upload did not give it)"
    )
    headers: dict[str, str] = Field(description="field → the header found for it in the file")
    rows_read: int | None = Field(description="data rows (the header excluded), blank ones too")
    blank_rows_skipped: int | None


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
    parse: ParseOut | None = Field(
        description="How the ledger file is read; null only for iterations of ledgers stored "
        "before this was recorded"
    )
    diff: Diff | None = Field(
        description="Against the previous succeeded iteration; null until this one succeeds"
    )


class ReprocessIn(StrictModel):
    notes: Text | None = Field(default=None, max_length=2000)
