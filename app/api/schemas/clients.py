"""Client bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.api.schemas import NonBlankText, StrictModel, Text


class ClientIn(StrictModel):
    name: NonBlankText = Field(max_length=200, examples=["Comercial Andes SpA"])
    tax_id: Text | None = Field(default=None, max_length=50, examples=["76.123.456-7"])


class ClientOut(BaseModel):
    id: uuid.UUID
    name: str
    tax_id: str | None
    created_at: datetime
