"""Reprocessing under concurrency (SPEC §5): requests merged into a queued iteration keep their
notes and triggers, and a storm of reference-data updates from two API replicas, with workers
running, keeps one queued and one running iteration per closing and ends with a snapshot of the
reference data as the last update left it. (The hand-off of an iteration that found its closing
busy: tests/integration/test_reprocessing_handoff.py.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.exc import IntegrityError

from app.adapters.postgres.tables import iterations
from app.api.state import app_state
from app.main import create_app
from app.settings import Settings
from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import (
    API,
    Account,
    Movement,
    assert_incidences,
    chart_json,
    create_closing,
    expected_incidences,
    get_json,
    upload,
)

CHART = {"1101": Account("Caja", "Cash", "current_assets"), "4101": Account("Ventas")}
LEDGER = (
    b"fecha,comprobante,cuenta,debe,haber\n"
    b"2026-10-01,V1,1101,100,0\n2026-10-01,V1,4101,0,100\n2026-10-02,V2,4101,0,7\n"
)


async def test_merged_requests_keep_their_notes_and_every_trigger(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    ana = await make_key("analyst", tenant="notes", name="ana")
    maria = await make_key("analyst", tenant="notes", name="maria")
    created = await create_closing(client, ana, chart=chart_json(CHART))
    reprocess = f"{API}/closings/{created.id}/reprocess"

    async def manual(key: str, body: dict[str, str]) -> dict[str, Any]:
        response = await client.post(reprocess, json=body, headers=bearer(key))
        assert response.status_code == 202, response.text
        return response.json()

    assert (await upload(client, ana, created.id, LEDGER)).json()["number"] == 1  # queued
    merged = await manual(maria, {"notes": "check FX"})
    assert (merged["number"], merged["trigger"], merged["requested_by"]) == (1, "initial", "ana")
    assert (merged["coalesced_triggers"], merged["notes"]) == (["manual"], "maria: check FX")
    assert (await manual(maria, {"notes": "check FX"}))["notes"] == "maria: check FX"
    assert (await manual(ana, {}))["notes"] == "maria: check FX"
    both = await manual(ana, {"notes": "second\nlook"})
    assert both["notes"] == "maria: check FX\nsecond\nlook"
    assert (await upload(client, ana, created.id, LEDGER)).json()["number"] == 1
    assert (await upload(client, ana, created.id, LEDGER)).json()["number"] == 1
    put = await client.put(
        f"{API}/clients/{created.client_id}/accounts",
        json=[{"code": "4101", "name": "Ventas", "name_en": "Sales"}],
        headers=bearer(maria),
    )
    (last,) = put.json()["iterations"]
    assert (last["number"], last["notes"]) == (1, both["notes"])
    # Four reprocess calls, two uploads, one chart change: each one recorded, in order.
    assert last["coalesced_triggers"] == [
        *["manual"] * 4,
        *["ledger_replaced"] * 2,
        "english_names_updated",
    ]

    await run_worker()
    own = await manual(maria, {"notes": "after FX"})  # nothing queued: an iteration of its own
    assert (own["number"], own["requested_by"], own["notes"]) == (2, "maria", "after FX")
    again = await manual(maria, {"notes": "more"})
    assert (again["number"], again["coalesced_triggers"]) == (2, ["manual"])  # manual into manual
    assert again["notes"] == "after FX\nmore"
    await run_worker()
    history = (await get_json(client, ana, f"/closings/{created.id}/iterations"))["items"]
    assert [(i["number"], i["status"]) for i in history] == [(2, "succeeded"), (1, "succeeded")]
    assert history[1]["coalesced_triggers"] == last["coalesced_triggers"]


async def test_the_database_refuses_a_second_queued_or_running_iteration(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker
) -> None:
    """Whoever writes (another replica, a future bug, psql), the partial unique indexes hold."""
    key = await make_key("analyst")
    closing = uuid.UUID((await create_closing(client, key, chart=chart_json(CHART))).id)
    assert (await upload(client, key, str(closing), LEDGER)).status_code == 202  # 1 is queued
    engine = app_state(app).resources.engine
    async with engine.connect() as conn:
        ledger_id = await conn.scalar(
            sa.select(iterations.c.ledger_id).limit(1).where(iterations.c.closing_id == closing)
        )

    async def insert(number: int, status: str) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(iterations).values(
                    closing_id=closing,
                    ledger_id=ledger_id,
                    number=number,
                    trigger="manual",
                    status=status,
                    heartbeat_at=sa.func.now(),
                )
            )

    with pytest.raises(IntegrityError, match="uq_iterations_one_queued"):
        await insert(2, "queued")
    await insert(2, "running")  # one queued and one running: allowed
    with pytest.raises(IntegrityError, match="uq_iterations_one_running"):
        await insert(3, "running")
    async with engine.begin() as conn:  # leave nothing for other tests' workers to pick up
        await conn.execute(
            sa.update(iterations).where(iterations.c.closing_id == closing).values(status="failed")
        )


# --- a storm of reference-data updates ------------------------------------------------------

CODES = ("1101", "2101", "4101", "5101")  # used by both stormed closings' ledgers
UPDATES = 20


def field(i: int) -> str:
    """Odd updates set classifications only, even ones English names only."""
    return "classification" if i % 2 else "name_en"


def update(i: int) -> list[dict[str, str | None]]:
    """Update i gives every stormed account a value of its own or clears it, by the bits of a
    pattern that is never 0: every update changes something."""
    bits = i % 15 + 1
    return [
        {"code": code, "name": f"Cuenta {code}", field(i): f"v{i}" if bits >> j & 1 else None}
        for j, code in enumerate(CODES)
    ]


def last_update(final: list[dict[str, Any]], name: str) -> int:
    """The one update whose values of `name` the chart shows: the last such one committed."""
    state = {a["code"]: a[name] for a in final}
    candidates = range(1 if name == "classification" else 2, UPDATES + 1, 2)
    (last,) = (i for i in candidates if {u["code"]: u[name] for u in update(i)} == state)
    return last


def storm_ledger(period: str, vouchers: int = 300) -> tuple[bytes, list[Movement]]:
    rows, moved = ["fecha,comprobante,cuenta,debe,haber"], []
    for n in range(vouchers):
        day = dt.date.fromisoformat(f"{period}-{1 + n % 28:02d}")
        for side, code in enumerate((CODES[n % 4], CODES[(n + 1) % 4])):
            amount = 10 + n + (1 if n % 3 == 0 and side == 1 else 0)  # V0, V3… unbalanced
            debit, credit = (amount, 0) if side == 0 else (0, amount)
            rows.append(f"{day},V{n},{code},{debit},{credit}")
            moved.append(Movement(len(rows), code, day, f"V{n}", Decimal(debit), Decimal(credit)))
    return ("\n".join(rows) + "\n").encode(), moved


async def _unfinished(app: FastAPI, closing_ids: list[str]) -> list[tuple[uuid.UUID, str, int]]:
    async with app_state(app).resources.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(iterations.c.closing_id, iterations.c.status, sa.func.count())
            .where(
                iterations.c.closing_id.in_([uuid.UUID(c) for c in closing_ids]),
                iterations.c.status.in_(("queued", "running")),
            )
            .group_by(iterations.c.closing_id, iterations.c.status)
        )
        return [tuple(row) for row in rows]


async def test_concurrent_updates_from_two_replicas_end_with_the_last_one(
    app: FastAPI, client: AsyncClient, settings: Settings, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    created = await create_closing(
        client, key, chart=[{"code": c, "name": f"Cuenta {c}"} for c in CODES], period="2026-10"
    )
    periods = {created.id: "2026-10"}
    for period in ("2026-11", "2027-01"):
        response = await client.post(
            f"{API}/clients/{created.client_id}/closings",
            json={"period": period},
            headers=bearer(key),
        )
        periods[response.json()["id"]] = period
    bystander = response.json()["id"]  # its ledger uses an account no update touches
    ledgers = {c: storm_ledger(p) for c, p in periods.items() if c != bystander}
    ledgers[bystander] = (b"fecha,comprobante,cuenta,debe,haber\n2027-01-01,B1,7101,1,1\n", [])
    for closing, (content, _) in ledgers.items():
        assert (await upload(client, key, closing, content)).status_code == 202
    await run_worker()
    stormed = [c for c in ledgers if c != bystander]

    done = asyncio.Event()
    observations: list[list[tuple[uuid.UUID, str, int]]] = []

    async def observe() -> None:
        while not done.is_set():
            observations.append(await _unfinished(app, stormed))
            await asyncio.sleep(0.01)

    async def work() -> None:  # a worker that keeps running while the updates arrive
        while not done.is_set():
            await run_worker()
            await asyncio.sleep(0.01)

    replica = create_app(settings)  # a second API instance on the same database and Redis
    async with (
        LifespanManager(replica),
        AsyncClient(transport=ASGITransport(app=replica), base_url="http://test") as other,
    ):
        background = [asyncio.create_task(f()) for f in (observe, work, work)]
        url = f"{API}/clients/{created.client_id}/accounts"
        try:
            async with asyncio.timeout(30):
                responses = await asyncio.gather(
                    *(
                        (client, other)[i % 2].put(url, json=update(i), headers=bearer(key))
                        for i in range(1, UPDATES + 1)
                    )
                )
        finally:
            done.set()
            await asyncio.wait_for(asyncio.gather(*background), 30)

    assert [r.status_code for r in responses] == [200] * UPDATES, [r.text for r in responses]
    deadline = time.monotonic() + 30
    while await _unfinished(app, stormed):  # drain: every queued iteration has a job
        assert time.monotonic() < deadline, await _unfinished(app, stormed)
        await run_worker()
    observations.append(await _unfinished(app, stormed))
    assert len(observations) >= 5  # sampled while the updates and the workers ran
    for seen in observations:
        assert all(count == 1 for _, _, count in seen), seen

    async with app_state(app).resources.engine.connect() as conn:
        mine = iterations.c.closing_id.in_([uuid.UUID(c) for c in ledgers])
        rows = (await conn.execute(sa.select(iterations).where(mine))).all()
    existing = {row.id: row for row in rows}
    for i, response in enumerate(responses, start=1):  # both stormed closings, one iteration each
        answered = response.json()["iterations"]
        assert sorted(item["closing_id"] for item in answered) == sorted(stormed)
        for item in answered:
            trigger = "classification_updated" if i % 2 else "english_names_updated"
            assert trigger in (item["trigger"], *item["coalesced_triggers"])
            row = existing[uuid.UUID(item["id"])]
            assert (str(row.closing_id), row.number) == (item["closing_id"], item["number"])
    assert {str(r.closing_id) for r in rows if r.number > 1} == set(stormed)  # not the bystander

    final = (await get_json(client, key, f"/clients/{created.client_id}/accounts"))["items"]
    chart = {a["code"]: Account(a["name"], a["name_en"], a["classification"]) for a in final}
    last_update(final, "classification"), last_update(final, "name_en")  # one of each
    for parity in (0, 1):  # so a snapshot of any earlier state would show other incidences
        cleared = {tuple(u[field(i)] is None for u in update(i)) for i in range(2 - parity, 21, 2)}
        assert len(cleared) == UPDATES // 2
    for closing in stormed:
        document = await get_json(client, key, f"/closings/{closing}/incidences")
        history = (await get_json(client, key, f"/closings/{closing}/iterations"))["items"]
        assert document["iteration"] == history[0]["number"]
        assert {i["status"] for i in history} == {"succeeded"}
        want = expected_incidences(ledgers[closing][1], chart, periods[closing])
        assert_incidences(document, want)
