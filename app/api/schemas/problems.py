"""The RFC 9457 problem document every error answers with (app/api/problems.py builds them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FieldError(BaseModel):
    """One failure of a request's validation."""

    loc: list[str | int] = Field(description="where: `body`, `query` or `path`, then the field")
    msg: str
    type: str | None


class Problem(BaseModel):
    """RFC 9457 problem details. Some problems carry more members, e.g. `missing_fields` and
    `header_found` when a ledger lacks required columns."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`/problems/<slug>`, or `about:blank` for plain HTTP errors")
    title: str
    status: int
    detail: str = Field(description="What went wrong, for a person")
    errors: list[FieldError] | None = Field(
        default=None, description="Validation problems only: every failure found"
    )
