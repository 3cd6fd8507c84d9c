"""Review bodies (SPEC §10)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.api.schemas import StrictModel, Text
from app.services.reviews.store import MAX_NOTE_LENGTH


class ReviewIn(StrictModel):
    status: Literal["acknowledged", "open"] = Field(
        description="`acknowledged`: looked at and accepted; `open`: to be looked at again"
    )
    note: Text | None = Field(
        default=None,
        max_length=MAX_NOTE_LENGTH,
        examples=["ERP rounding, fixed next month"],
    )


class ReviewOut(BaseModel):
    key: str
    status: Literal["acknowledged", "open"]
    note: str | None
    by: str = Field(description="The name of the key that reviewed it")
    at: datetime
    iteration: int = Field(description="The snapshot's iteration when it was reviewed")
    movement_count: int = Field(description="The incidence's figures when it was reviewed")
    debit_total: str
    credit_total: str
