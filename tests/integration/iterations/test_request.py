"""Requesting iterations (services/iterations/request.py): numbering, coalescing into the one
queued iteration, and the closing's state and owner checked first."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI

from app.domain.errors import Conflict, NotFound
from app.services.iterations.request import lock_open_closing, request_iteration
from app.services.reviews.close import set_status
from tests.integration.service_support import analyst, owned_closing, transaction


async def _request(
    app: FastAPI, tenant: uuid.UUID, closing: uuid.UUID, trigger: str, **kw: str
) -> dict[str, Any]:
    async with transaction(app) as conn:
        await lock_open_closing(conn, tenant, closing)
        return await request_iteration(conn, closing, trigger, requested_by="svc", **kw)


async def test_a_request_while_one_is_queued_merges_into_it(app: FastAPI) -> None:
    owned = await owned_closing(app)
    first = await _request(app, owned.tenant_id, owned.closing_id, "initial", notes="first")
    merged = await _request(app, owned.tenant_id, owned.closing_id, "manual", notes="again")
    assert (first["number"], merged["number"], merged["id"]) == (1, 1, first["id"])
    assert merged["trigger"] == "initial" and merged["notes"] == "first\nagain"
    assert merged["coalesced_triggers"] == ["manual"]


async def test_a_closed_closing_refuses_requests_and_another_tenant_sees_none(
    app: FastAPI,
) -> None:
    owned = await owned_closing(app)
    async with transaction(app) as conn:
        await set_status(conn, analyst(owned.tenant_id), owned.closing_id, "closed")
    with pytest.raises(Conflict, match="is closed"):
        await _request(app, owned.tenant_id, owned.closing_id, "manual")
    with pytest.raises(NotFound):
        await _request(app, uuid.uuid4(), owned.closing_id, "manual")
