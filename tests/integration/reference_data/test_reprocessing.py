"""Re-processing after a reference-data change (services/reference_data): a change joins the
runs already queued without the closings' locks, numbers new ones under them, and starts over
when a worker claims a run it was joining."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.adapters.postgres import tables
from app.adapters.postgres.tables import iterations
from app.adapters.queue import iteration_job_id
from app.api.state import app_state
from app.resources import queue_name
from app.services.reference_data import reprocessing
from app.services.reference_data.changes import Entry
from app.services.reference_data.upsert import ACCOUNTS, put_reference_data
from tests.integration.service_support import (
    analyst,
    owned_closing,
    queue_iteration,
    second_closing,
    transaction,
)


def _classify(code: str, classification: str) -> list[Entry]:
    values = {"code": code, "name": f"Cuenta {code}", "classification": classification}
    return [Entry("item 1", values)]


async def test_a_change_joins_queued_runs_and_numbers_new_ones_for_the_others(
    app: FastAPI,
) -> None:
    owned = await owned_closing(app)
    other = await second_closing(app, owned.tenant_id, owned.client_id)
    queued = await queue_iteration(app, owned.tenant_id, owned.closing_id)
    resources = app_state(app).require_resources()
    actor = analyst(owned.tenant_id)
    await put_reference_data(resources, actor, owned.client_id, ACCOUNTS, _classify("1101", "a"))
    answer = await put_reference_data(
        resources, actor, owned.client_id, ACCOUNTS, _classify("1101", "b")
    )
    by_closing = {item["closing_id"]: item for item in answer["iterations"]}
    assert set(by_closing) == {owned.closing_id, other}
    joined, numbered = by_closing[owned.closing_id], by_closing[other]
    assert (joined["id"], joined["number"], joined["trigger"]) == (queued["id"], 1, "initial")
    # The first change created the account, the second reclassified it: both joined the run.
    assert joined["coalesced_triggers"] == ["accounts_updated", "classification_updated"]
    # The other closing had nothing queued: the first change numbered a run, the second joined.
    assert (numbered["number"], numbered["trigger"]) == (1, "accounts_updated")
    assert numbered["coalesced_triggers"] == ["classification_updated"]
    # Only the run a change numbered got a job from it; a run it joined has one already (here,
    # queued without one on purpose: no change queued a second).
    settings = resources.settings
    jobs = await resources.redis.zrange(queue_name(settings), 0, -1)
    prefix = settings.redis_key_prefix
    assert iteration_job_id(prefix, numbered["id"], 0).encode() in jobs
    assert iteration_job_id(prefix, joined["id"], 0).encode() not in jobs


async def test_a_run_claimed_while_a_change_joins_it_makes_the_change_start_over(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    owned = await owned_closing(app)
    queued = await queue_iteration(app, owned.tenant_id, owned.closing_id)
    resources = app_state(app).require_resources()
    join = reprocessing.merge_into_queued
    calls = 0

    async def claimed_first(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # a worker claims the run between the change's first read and its join
            async with resources.engine.begin() as conn:
                await conn.execute(
                    sa.update(iterations)
                    .where(iterations.c.id == queued["id"])
                    .values(status="running")
                )
        return await join(*args)

    monkeypatch.setattr(reprocessing, "merge_into_queued", claimed_first)
    answer = await put_reference_data(
        resources, analyst(owned.tenant_id), owned.client_id, ACCOUNTS, _classify("1101", "a")
    )
    assert calls == 2  # the first transaction was rolled back and run again
    [iteration] = answer["iterations"]
    assert (iteration["number"], iteration["status"]) == (2, "queued")
    assert iteration["trigger"] == "accounts_updated"
    async with transaction(app) as conn:  # the account was written once, audited once
        audited = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(tables.audit_events)
            .where(tables.audit_events.c.tenant_id == owned.tenant_id)
            .where(tables.audit_events.c.action == "account.created")
        )
    assert audited == 1
