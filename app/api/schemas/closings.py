"""Closing bodies."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, StrictBool, field_validator

from app.api.schemas import StrictModel

# ASCII digits only: `\d` would also take other scripts' digits.
# Years 0001 to 9999 (a date has no year 0), months 01 to 12.
_PERIOD = re.compile(r"([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-(0[1-9]|1[0-2])")
PERIOD_PATTERN = f"^{_PERIOD.pattern}$"


class ClosingIn(StrictModel):
    period: str = Field(
        description="The closed month, `YYYY-MM`",
        examples=["2026-10"],
        json_schema_extra={"pattern": PERIOD_PATTERN},
    )

    @field_validator("period")
    @classmethod
    def _valid_period(cls, value: str) -> str:
        if not _PERIOD.fullmatch(value):
            raise ValueError(
                f"period must be YYYY-MM with a year 0001..9999 and a month 01..12, got {value!r}"
            )
        return value


class ClosingPatch(StrictModel):
    status: Literal["open", "closed"] = Field(
        description="`closed` freezes the closing (uploads, re-processing and reviews answer "
        "409); `open` reopens it. Closing is refused (409, listing `unreviewed_keys`) while "
        "an error incidence is neither resolved nor acknowledged"
    )
    force: StrictBool = Field(
        default=False,
        description="Admins only: close even with unreviewed errors (the audit trail records "
        "it, with the keys)",
    )


class LatestIteration(BaseModel):
    number: int
    status: str


class SnapshotRef(BaseModel):
    iteration: int
    content_hash: str


class ClosingOut(BaseModel):
    id: uuid.UUID
    client_id: uuid.UUID
    period: str
    status: Literal["open", "closed"]
    created_at: datetime
    updated_at: datetime
    latest_iteration: LatestIteration | None = Field(
        description="The newest iteration, whatever its status; null before the first upload"
    )
    snapshot: SnapshotRef | None = Field(
        description="The snapshot being served (latest succeeded iteration), or null"
    )
