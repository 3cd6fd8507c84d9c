"""An iteration is evaluated against the client's reference data as it is when its run starts
(SPEC §2): a change made while its ledger is parsed belongs to the next iteration, which it
queues, and whose diff shows what it did."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from httpx import AsyncClient

from app.services.iterations import run as processing
from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import API, Account, chart_json, create_closing, get_json, upload

CHART = {"1101": Account("Caja", "Cash", "current_assets"), "4101": Account("Ventas", "Sales")}
LEDGER = (
    b"fecha,comprobante,cuenta,debe,haber\n"
    b"2026-10-01,V1,1101,100,0\n2026-10-01,V1,4101,0,60\n2026-10-01,V1,5101,0,40\n"
)


async def test_a_chart_change_during_a_run_belongs_to_the_next_iteration(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await make_key("analyst")
    closing = await create_closing(client, key, chart=chart_json(CHART))
    started, release = asyncio.Event(), asyncio.Event()
    load_movements = processing.load_movements

    async def parsing_until_released(*args: Any) -> Any:
        started.set()
        await release.wait()
        return await load_movements(*args)

    monkeypatch.setattr(processing, "load_movements", parsing_until_released)
    assert (await upload(client, key, closing.id, LEDGER)).status_code == 202
    worker = asyncio.ensure_future(run_worker())
    try:
        await asyncio.wait_for(started.wait(), 15)  # iteration 1 has started
        added = await client.put(
            f"{API}/clients/{closing.client_id}/accounts",
            json=[{"code": "5101", "name": "Otros", "name_en": "Other"}],
            headers=bearer(key),
        )
        assert added.status_code == 200, added.text
        assert [i["number"] for i in added.json()["iterations"]] == [2]
    finally:
        release.set()
        await asyncio.wait_for(worker, 25)
    missing = "ACCOUNT_NOT_IN_CHART:5101"
    first = await get_json(client, key, f"/closings/{closing.id}/iterations/1")
    second = await get_json(client, key, f"/closings/{closing.id}/iterations/2")
    assert (first["status"], second["status"]) == ("succeeded", "succeeded")
    assert missing in first["diff"]["new"]  # the chart as it was when iteration 1 started
    assert second["trigger"] == "accounts_updated"
    assert missing in second["diff"]["resolved"]
