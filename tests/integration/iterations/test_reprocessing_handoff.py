"""The hand-off between iterations of one closing: an iteration whose job finds another one of its
closing running (claims.Busy) waits, and runs as soon as that one ends, even when it ends while
the waiting iteration's job is still in flight (arq keeps that job's id until it returns)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient

from app.adapters.postgres.tables import iterations
from app.api.state import app_state
from app.services.iterations import claims
from app.services.iterations import run as processing
from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import API, Account, chart_json, create_closing, get_json, upload

CHART = {"1101": Account("Caja", "Cash", "current_assets"), "4101": Account("Ventas")}
LEDGER = (
    b"fecha,comprobante,cuenta,debe,haber\n"
    b"2026-10-01,V1,1101,100,0\n2026-10-01,V1,4101,0,100\n2026-10-02,V2,4101,0,7\n"
)


async def _wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 15
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _status(app: FastAPI, closing_id: str, number: int) -> str | None:
    async with app_state(app).resources.engine.connect() as conn:
        return await conn.scalar(
            sa.select(iterations.c.status).where(
                iterations.c.closing_id == uuid.UUID(closing_id), iterations.c.number == number
            )
        )


async def test_an_iteration_that_found_its_closing_busy_runs_when_the_other_ends(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worst case of the hand-off: iteration 1 ends while the job of iteration 2, which found
    it running (Busy), is still in flight. The hand-off must still queue iteration 2."""
    key = await make_key("analyst")
    closing = (await create_closing(client, key, chart=chart_json(CHART))).id
    release, handed_over = asyncio.Event(), asyncio.Event()
    busy: list[uuid.UUID] = []
    evaluate, claim, hand_over = (
        processing.evaluate_iteration,
        claims.claim,
        processing.enqueue_by_id,
    )

    async def gated_evaluate(engine: Any, claimed: claims.Claim, *rest: Any) -> Any:
        if claimed.number == 1:
            await release.wait()  # iteration 1 runs until iteration 2's job has found it busy
        return await evaluate(engine, claimed, *rest)

    async def racing_claim(engine: Any, iteration_id: uuid.UUID, lease: float) -> Any:
        try:
            return await claim(engine, iteration_id, lease)
        except claims.Busy:
            busy.append(iteration_id)
            release.set()
            await asyncio.wait_for(handed_over.wait(), 15)  # iteration 1 ends meanwhile
            raise

    async def observed_hand_over(*args: Any) -> None:
        await hand_over(*args)
        handed_over.set()

    monkeypatch.setattr(processing, "evaluate_iteration", gated_evaluate)
    monkeypatch.setattr(claims, "claim", racing_claim)
    monkeypatch.setattr(processing, "enqueue_by_id", observed_hand_over)

    assert (await upload(client, key, closing, LEDGER)).status_code == 202
    worker = asyncio.ensure_future(run_worker())
    try:

        async def first_running() -> bool:
            return await _status(app, closing, 1) == "running"

        await _wait_for(first_running, "iteration 1 to run")
        second = await client.post(
            f"{API}/closings/{closing}/reprocess", json={"notes": "n"}, headers=bearer(key)
        )
        assert second.status_code == 202, second.text
        assert (second.json()["number"], second.json()["status"]) == (2, "queued")
        await asyncio.wait_for(asyncio.shield(worker), 25)
    finally:
        release.set()
        handed_over.set()
        await asyncio.wait_for(worker, 25)
    assert busy == [uuid.UUID(second.json()["id"])]  # the race did happen
    history = (await get_json(client, key, f"/closings/{closing}/iterations"))["items"]
    assert [(i["number"], i["status"]) for i in history] == [(2, "succeeded"), (1, "succeeded")]
    document = await get_json(client, key, f"/closings/{closing}/incidences")
    assert document["iteration"] == 2
