"""The snapshot document (SPEC §4), as GET /closings/{id}/incidences answers it.

Documentation only: the route sends the stored bytes as they are, so these models describe them
for the OpenAPI document (and the clients generated from it) without touching them.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from app.api.schemas import Amount
from app.domain.catalog import ElementKind, IncidenceType, Severity


class Element(BaseModel):
    """What an incidence is about."""

    kind: ElementKind
    code: str = Field(description="The account, document type, voucher, column, period or rule")
    name: str | None = Field(description="The chart's (or the client's) name for it, if known")


class Incidence(BaseModel):
    """Every movement caught by one rule for one element."""

    key: str = Field(
        description="`{type}:{element.code}`", examples=["ACCOUNT_UNCLASSIFIED:110105"]
    )
    type: IncidenceType
    severity: Severity
    element: Element
    message: str
    movement_count: int
    debit_total: Amount
    credit_total: Amount
    first_date: date | None = Field(description="null for ROW_INVALID")
    last_date: date | None = Field(description="null for ROW_INVALID")
    sample_lines: list[int] = Field(description="The 5 smallest lines (the header is line 1)")
    first_seen_iteration: int = Field(
        description="First iteration of the unbroken run of succeeded iterations with this key"
    )


class Tally(BaseModel):
    incidences: int
    movements: int


class Statistics(BaseModel):
    movements_total: int = Field(description="Data rows of the ledger")
    movements_rejected: int = Field(description="Rows whose required values cannot be parsed")
    movements_with_incidences: int = Field(description="Valid movements caught by some rule")
    incidences_total: int
    debit_total: Amount = Field(description="Over valid movements")
    credit_total: Amount = Field(description="Over valid movements")
    by_type: dict[str, Tally] = Field(
        description="Per evaluated incidence type: movements = sum of its movement_count"
    )
    by_severity: dict[str, Tally] = Field(
        description="`error` and `warning`: movements = distinct rows caught by a rule of it"
    )
    rules_skipped: list[str] = Field(description="e.g. the document-type rules without that column")


class SnapshotPage(BaseModel):
    total: int = Field(description="Incidences matching the filters")
    offset: int
    limit: int | None


class Snapshot(BaseModel):
    """The consolidated incidences of the latest succeeded iteration."""

    closing_id: uuid.UUID
    iteration: int
    content_hash: str = Field(description="sha256 of the canonical JSON; the ETag derives from it")
    computed_at: datetime
    statistics: Statistics
    incidences: list[Incidence] = Field(
        description="Errors first, then movement_count descending, then key"
    )
    page: SnapshotPage | None = Field(
        default=None,
        description="Present when filtered or paged (`type`, `severity`, `limit`, `offset`)",
    )


class Movement(BaseModel):
    """One ledger row behind an incidence, as read from the file."""

    line: int = Field(description="The row's line in the file (the header is line 1)")
    account_code: str | None
    date: date | None
    voucher: str | None
    document_type: str | None
    document_number: str | None
    description: str | None
    account_name: str | None
    cost_center: str | None
    third_party: str | None
    debit: Amount | None
    credit: Amount | None
    invalid_field: str | None = Field(description="For a rejected row: the field that failed")
    invalid_reason: str | None = Field(description="For a rejected row: why it failed")


class MovementsPage(BaseModel):
    """A page of the movements behind an incidence, by ascending line."""

    items: list[Movement]
    next_cursor: str | None = Field(description="Pass it as `cursor` for the next page")
