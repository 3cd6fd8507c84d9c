"""Requesting iterations (services/iterations/request.py): numbering, coalescing into the one
queued iteration, and the closing's state and owner checked first."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.adapters.postgres.tables import iterations, ledgers
from app.domain.errors import Conflict, NotFound
from app.services.iterations.coalesce import MAX_COALESCED_TRIGGERS
from app.services.iterations.request import request_iteration, request_iterations
from app.services.reviews.close import set_status
from app.services.tenancy.closings import lock_open_closing
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


async def test_every_merged_trigger_is_recorded_repeats_of_its_own_included(
    app: FastAPI,
) -> None:
    owned = await owned_closing(app)
    sent = ["ledger_replaced", "ledger_replaced", "manual", "manual", "ledger_replaced"]
    answers = [await _request(app, owned.tenant_id, owned.closing_id, t) for t in sent]
    assert {a["number"] for a in answers} == {1}
    assert answers[0]["trigger"] == "ledger_replaced"
    assert [a["coalesced_triggers"] for a in answers] == [
        [],
        ["ledger_replaced"],
        ["ledger_replaced", "manual"],
        ["ledger_replaced", "manual", "manual"],
        ["ledger_replaced", "manual", "manual", "ledger_replaced"],
    ]


async def test_one_request_for_many_closings_merges_where_queued_and_numbers_the_rest(
    app: FastAPI,
) -> None:
    waiting, idle, fresh = [await owned_closing(app) for _ in range(3)]
    queued = await _request(app, waiting.tenant_id, waiting.closing_id, "initial", notes="n")
    done = await _request(app, idle.tenant_id, idle.closing_id, "initial")
    order = [idle.closing_id, fresh.closing_id, waiting.closing_id]
    async with transaction(app) as conn:  # idle's first iteration is no longer queued
        await conn.execute(
            sa.update(iterations).where(iterations.c.id == done["id"]).values(status="succeeded")
        )
        await conn.execute(  # every closing's ledger says how it is read
            sa.update(ledgers)
            .where(ledgers.c.closing_id.in_(order))
            .values(parse=sa.func.jsonb_build_object("kind", ledgers.c.closing_id.cast(sa.Text)))
        )
    async with transaction(app) as conn:
        answers = await request_iterations(conn, order, "accounts_updated", requested_by="svc")
    assert [a["closing_id"] for a in answers] == order  # in the order asked
    second, first, merged = answers
    assert (second["number"], second["trigger"]) == (2, "accounts_updated")
    assert second["status"] == "queued"
    assert (first["number"], first["trigger"], first["coalesced_triggers"]) == (
        1,
        "accounts_updated",
        [],
    )
    assert (merged["id"], merged["number"], merged["trigger"]) == (queued["id"], 1, "initial")
    assert merged["coalesced_triggers"] == ["accounts_updated"] and merged["notes"] == "n"
    assert all(a["requested_by"] == "svc" for a in (second, first))
    assert [a["parse"] for a in answers] == [{"kind": str(closing)} for closing in order]


async def test_merged_triggers_keep_the_newest_thousand(app: FastAPI) -> None:
    assert MAX_COALESCED_TRIGGERS == 1000
    owned = await owned_closing(app)
    queued = await _request(app, owned.tenant_id, owned.closing_id, "manual")
    assert queued["coalesced_triggers"] == []
    merged = await _request(app, owned.tenant_id, owned.closing_id, "manual")
    assert merged["coalesced_triggers"] == ["manual"]
    async with transaction(app) as conn:
        await conn.execute(
            sa.update(iterations)
            .where(iterations.c.id == queued["id"])
            .values(coalesced_triggers=["manual", *["x"] * 999])
        )
    full = await _request(app, owned.tenant_id, owned.closing_id, "accounts_updated")
    assert len(full["coalesced_triggers"]) == 1000
    assert full["coalesced_triggers"][:999] == ["x"] * 999  # "manual", the oldest, dropped
    assert full["coalesced_triggers"][-1] == "accounts_updated"


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
