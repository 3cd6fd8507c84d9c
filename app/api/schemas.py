"""Request and response models (pydantic lives at the edges only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Items(BaseModel, Generic[T]):
    """The list envelope of SPEC §6."""

    items: list[T]


class ClientIn(StrictModel):
    name: str = Field(min_length=1, max_length=200, examples=["Comercial Andes SpA"])
    tax_id: str | None = Field(default=None, max_length=50, examples=["76.123.456-7"])


class ClientOut(BaseModel):
    id: uuid.UUID
    name: str
    tax_id: str | None
    created_at: datetime
