"""Audit trail answers (SPEC §9)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditActor(BaseModel):
    key_id: uuid.UUID | None = Field(None, description="The API key; absent for the command line")
    name: str = Field(description="The key's name, or `cli:<user>` for the command line")
    role: str = Field(description="viewer, analyst or admin; `operator` for the command line")


class AuditResource(BaseModel):
    type: str = Field(examples=["account"])
    id: str = Field(examples=["410101"])


class AuditEvent(BaseModel):
    id: int = Field(description="Increasing: later events have larger ids")
    at: datetime
    actor: AuditActor
    action: str = Field(examples=["account.updated"])
    resource: AuditResource
    client_id: uuid.UUID | None = Field(None, description="Absent when no client applies")
    closing_id: uuid.UUID | None = Field(None, description="Absent when no closing applies")
    request_id: str | None = Field(
        None, description="The X-Request-ID of the request that made it (absent from the CLI)"
    )
    details: dict[str, Any] = Field(
        description="What changed; for reference data `changes`: {field: {before, after}}",
        examples=[{"changes": {"classification": {"before": None, "after": "revenue"}}}],
    )


class AuditPage(BaseModel):
    items: list[AuditEvent]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last"
    )
