"""Snapshot cache admin bodies."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from app.api.schemas import StrictModel


class InvalidateIn(StrictModel):
    """Exactly one of `closing_id`, `client_id` or `all: true`."""

    # The rule of _exactly_one, in the OpenAPI document too.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["closing_id"], "properties": {"closing_id": {"type": "string"}}},
                {"required": ["client_id"], "properties": {"client_id": {"type": "string"}}},
                {"required": ["all"], "properties": {"all": {"const": True}}},
            ]
        }
    )

    closing_id: uuid.UUID | None = None
    client_id: uuid.UUID | None = None
    # Strict: `"all": 0` or `"all": "yes"` is a mistake to point out, not a boolean to guess.
    all: StrictBool = Field(default=False, description="every cached snapshot of your tenant")

    @model_validator(mode="after")
    def _exactly_one(self) -> InvalidateIn:
        given = [self.closing_id is not None, self.client_id is not None, self.all]
        if sum(given) != 1:
            raise ValueError('give exactly one of "closing_id", "client_id" or "all": true')
        return self


class InvalidateOut(BaseModel):
    scope: Literal["closing", "client", "all"]
    target: str | None = Field(description="the closing or client id; null for all")
    snapshots_dropped: int = Field(description="closings whose cached snapshot was dropped")
