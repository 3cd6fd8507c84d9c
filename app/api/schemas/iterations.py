"""Iteration bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.api.schemas import StrictModel, Text


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


class IterationDetail(IterationOut):
    diff: dict[str, Any] | None = Field(
        description="against the previous succeeded iteration: new, resolved, changed, unchanged"
    )


class ReprocessIn(StrictModel):
    notes: Text | None = Field(default=None, max_length=2000)
