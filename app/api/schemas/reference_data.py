"""Accounts and document-type bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.api.schemas import NonBlankText, StrictModel, Text
from app.api.schemas.iterations import IterationOut
from app.services.reference_data.changes import MAX_CODE_LENGTH, MAX_TEXT_LENGTH


class AccountIn(StrictModel):
    code: NonBlankText = Field(max_length=MAX_CODE_LENGTH, examples=["110105"])
    name: NonBlankText = Field(max_length=MAX_TEXT_LENGTH, examples=["Banco Estado"])
    # Omitted: left as stored (null for a new account). null or "": cleared.
    name_en: Text | None = Field(default=None, max_length=MAX_TEXT_LENGTH, examples=["Bank"])
    classification: Text | None = Field(
        default=None, max_length=MAX_TEXT_LENGTH, examples=["current_assets"]
    )


class AccountOut(BaseModel):
    code: str
    name: str
    name_en: str | None
    classification: str | None
    updated_at: datetime


class DocumentTypeIn(StrictModel):
    code: NonBlankText = Field(max_length=MAX_CODE_LENGTH, examples=["FAC"])
    name: NonBlankText = Field(max_length=MAX_TEXT_LENGTH, examples=["Factura"])


class DocumentTypeOut(BaseModel):
    code: str
    name: str
    updated_at: datetime


class UpsertResult(BaseModel):
    created: int = Field(description="Codes that did not exist before")
    updated: int = Field(description="Existing codes whose values changed (unchanged rows: 0)")
    iterations: list[IterationOut] = Field(
        description="The iterations this change queued (or was merged into), one per closing"
    )
