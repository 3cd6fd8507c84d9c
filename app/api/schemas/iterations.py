"""Iteration bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.api.schemas import StrictModel, Text


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
    coalesced_triggers: list[str]
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
        description="how the ledger file is read; null only for iterations of ledgers stored "
        "before this was recorded"
    )


class IterationDetail(IterationOut):
    diff: dict[str, Any] | None = Field(
        description="against the previous succeeded iteration: new, resolved, changed, unchanged"
    )


class ReprocessIn(StrictModel):
    notes: Text | None = Field(default=None, max_length=2000)
