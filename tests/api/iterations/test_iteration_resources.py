"""Every iteration resource carries its diff (lists, 202 bodies, the PUT `iterations` array), and
the history is paged by keyset on `number` (SPEC §6). Expected diffs are worked out by hand."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient

from app.adapters.postgres.tables import closings, iterations
from app.api.state import app_state
from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import API, Account, assert_problem, chart_json, create_closing, get_json, upload

CHART = {"1101": Account("Caja", "Cash", "current_assets")}
# Balanced, in period, no document-type column: the one incidence is the unknown account 9999.
LEDGER = (
    b"fecha,comprobante,cuenta,debe,haber\n2026-10-01,V1,1101,100,0\n2026-10-01,V1,9999,0,100\n"
)
NOT_IN_CHART = "ACCOUNT_NOT_IN_CHART:9999"


def diff(new: tuple[str, ...] = (), resolved: tuple[str, ...] = ()) -> dict[str, Any]:
    """A stored diff with no changed and no unchanged incidence."""
    return {"new": list(new), "resolved": list(resolved), "changed": [], "unchanged": 0}


async def test_every_iteration_resource_carries_its_diff(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    closing = await create_closing(client, key, chart=chart_json(CHART))

    accepted = await upload(client, key, closing.id, LEDGER)
    assert accepted.status_code == 202, accepted.text
    assert (accepted.json()["number"], accepted.json()["diff"]) == (1, None)  # not run yet
    await run_worker()

    # The chart gains 9999: the closing re-runs, and the PUT answer shows that queued run.
    put = await client.put(
        f"{API}/clients/{closing.client_id}/accounts",
        json=[{"code": "9999", "name": "Otros", "name_en": "Other", "classification": "misc"}],
        headers=bearer(key),
    )
    assert put.status_code == 200, put.text
    (queued,) = put.json()["iterations"]
    assert (queued["number"], queued["trigger"], queued["diff"]) == (2, "accounts_updated", None)
    await run_worker()

    reprocess = await client.post(
        f"{API}/closings/{closing.id}/reprocess", json={}, headers=bearer(key)
    )
    assert reprocess.status_code == 202, reprocess.text
    assert (reprocess.json()["number"], reprocess.json()["diff"]) == (3, None)
    await run_worker()

    history = await get_json(client, key, f"/closings/{closing.id}/iterations")
    assert history["next_cursor"] is None
    assert [(i["number"], i["status"], i["diff"]) for i in history["items"]] == [
        (3, "succeeded", diff()),  # nothing changed: no incidence before or after
        (2, "succeeded", diff(resolved=(NOT_IN_CHART,))),
        (1, "succeeded", diff(new=(NOT_IN_CHART,))),
    ]
    for item in history["items"]:
        one = await get_json(client, key, f"/closings/{closing.id}/iterations/{item['number']}")
        assert one == item


async def _history_of(app: FastAPI, client: AsyncClient, key: str, runs: int) -> str:
    """A closing whose history holds `runs` iterations: one real run, then failed ones (their
    rows written directly: only their numbers matter here)."""
    closing = await create_closing(client, key, chart=chart_json(CHART))
    assert (await upload(client, key, closing.id, LEDGER)).status_code == 202
    closing_id = uuid.UUID(closing.id)
    async with app_state(app).resources.engine.begin() as conn:
        ledger = await conn.scalar(
            sa.select(closings.c.ledger_id).where(closings.c.id == closing_id)
        )
        await conn.execute(
            sa.insert(iterations),
            [
                {
                    "closing_id": closing_id,
                    "number": number,
                    "ledger_id": ledger,
                    "trigger": "manual",
                    "status": "failed",
                }
                for number in range(2, runs + 1)
            ],
        )
    return closing.id


async def test_history_pages_by_number(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker
) -> None:
    key = await make_key("analyst")
    closing = await _history_of(app, client, key, 25)
    path = f"/closings/{closing}/iterations"

    def numbers(page: dict[str, Any]) -> list[int]:
        return [item["number"] for item in page["items"]]

    first = await get_json(client, key, path)  # the default page: 20
    assert (numbers(first), first["next_cursor"]) == (list(range(25, 5, -1)), 6)
    rest = await get_json(client, key, path, cursor=6)
    assert (numbers(rest), rest["next_cursor"]) == ([5, 4, 3, 2, 1], None)

    two = await get_json(client, key, path, limit=2)
    assert (numbers(two), two["next_cursor"]) == ([25, 24], 24)
    after = await get_json(client, key, path, limit=2, cursor=24)
    assert (numbers(after), after["next_cursor"]) == ([23, 22], 22)
    last = await get_json(client, key, path, limit=5, cursor=6)  # exactly the rest: no next
    assert (numbers(last), last["next_cursor"]) == ([5, 4, 3, 2, 1], None)
    assert (await get_json(client, key, path, cursor=1)) == {"items": [], "next_cursor": None}
    whole = await get_json(client, key, path, limit=100)
    assert (numbers(whole), whole["next_cursor"]) == (list(range(25, 0, -1)), None)

    for bad in ({"limit": 0}, {"limit": 101}, {"cursor": 0}, {"cursor": 2**31}):
        response = await client.get(f"{API}{path}", params=bad, headers=bearer(key))
        assert_problem(response, 422)
    stranger = await make_key("viewer")  # another tenant: not found, not an empty page
    assert_problem(await client.get(f"{API}{path}", headers=bearer(stranger)), 404)
