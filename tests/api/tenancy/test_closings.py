"""Closings over HTTP: create, list, get, close/reopen, and what they show of their runs."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.adapters.postgres.tables import closings, iterations, ledgers, snapshots
from app.api.state import app_state
from tests.conftest import KeyMaker, bearer

API = "/api/v1"


async def _new_client(http: AsyncClient, key: str) -> str:
    response = await http.post(f"{API}/clients", json={"name": "Andes"}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _open(http: AsyncClient, key: str, client_id: str, period: str) -> Response:
    url = f"{API}/clients/{client_id}/closings"
    return await http.post(url, json={"period": period}, headers=bearer(key))


def _assert_problem(response: Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status
    return str(response.json()["detail"])


async def test_create_get_and_list(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    client_id = await _new_client(client, key)
    response = await _open(client, key, client_id, "2026-10")
    assert response.status_code == 201, response.text
    created = response.json()
    assert uuid.UUID(created["id"])
    assert (created["client_id"], created["period"], created["status"]) == (
        client_id,
        "2026-10",
        "open",
    )
    assert created["latest_iteration"] is None
    assert created["snapshot"] is None

    fetched = await client.get(f"{API}/closings/{created['id']}", headers=bearer(key))
    assert fetched.json() == created

    periods = ["2026-10", "2025-12", "2026-01"]
    for period in periods[1:]:
        assert (await _open(client, key, client_id, period)).status_code == 201
    listed = await client.get(f"{API}/clients/{client_id}/closings", headers=bearer(key))
    assert [c["period"] for c in listed.json()["items"]] == sorted(periods, reverse=True)


async def test_duplicate_period_is_a_conflict(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    client_id = await _new_client(client, key)
    first = (await _open(client, key, client_id, "2026-03")).json()
    detail = _assert_problem(await _open(client, key, client_id, "2026-03"), 409)
    assert first["id"] in detail and "2026-03" in detail
    # Another client may close the same month.
    other = await _new_client(client, key)
    assert (await _open(client, key, other, "2026-03")).status_code == 201


@pytest.mark.parametrize(
    "period", ["2026-13", "2026-00", "2026-1", "26-10", "2026/10", "", "x", "0000-01"]
)
async def test_bad_period(client: AsyncClient, make_key: KeyMaker, period: str) -> None:
    key = await make_key("analyst")
    client_id = await _new_client(client, key)
    detail = _assert_problem(await _open(client, key, client_id, period), 422)
    assert "period" in detail


async def test_unknown_body_field_is_rejected(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    url = f"{API}/clients/{await _new_client(client, key)}/closings"
    body = {"period": "2026-10", "status": "closed"}
    _assert_problem(await client.post(url, json=body, headers=bearer(key)), 422)


async def test_close_and_reopen(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    closing = (await _open(client, key, await _new_client(client, key), "2026-10")).json()
    url = f"{API}/closings/{closing['id']}"

    closed = (await client.patch(url, json={"status": "closed"}, headers=bearer(key))).json()
    assert closed["status"] == "closed"
    assert datetime.fromisoformat(closed["updated_at"]) > datetime.fromisoformat(
        closing["updated_at"]
    )
    again = (await client.patch(url, json={"status": "closed"}, headers=bearer(key))).json()
    assert again["updated_at"] == closed["updated_at"]  # no-op: nothing changed
    reopened = await client.patch(url, json={"status": "open"}, headers=bearer(key))
    assert reopened.status_code == 200
    assert reopened.json()["status"] == "open"
    assert (await client.get(url, headers=bearer(key))).json()["status"] == "open"
    _assert_problem(await client.patch(url, json={"status": "archived"}, headers=bearer(key)), 422)
    _assert_problem(await client.patch(url, json={}, headers=bearer(key)), 422)


async def test_latest_iteration_and_snapshot(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker
) -> None:
    key = await make_key("analyst")
    closing = (await _open(client, key, await _new_client(client, key), "2026-10")).json()
    closing_id = uuid.UUID(closing["id"])
    content_hash = hashlib.sha256(b"snapshot document").hexdigest()
    # Runs are written directly: uploads and workers are not what this test is about.
    async with app_state(app).resources.engine.begin() as conn:
        ledger_id = await conn.scalar(
            sa.insert(ledgers)
            .values(closing_id=closing_id, size_bytes=0, sha256="0" * 64, layout={})
            .returning(ledgers.c.id)
        )
        await conn.execute(
            sa.update(closings).where(closings.c.id == closing_id).values(ledger_id=ledger_id)
        )
        first = await conn.scalar(
            sa.insert(iterations)
            .values(
                closing_id=closing_id,
                number=1,
                ledger_id=ledger_id,
                trigger="initial",
                status="succeeded",
            )
            .returning(iterations.c.id)
        )
        await conn.execute(
            sa.insert(iterations).values(
                closing_id=closing_id, number=2, ledger_id=ledger_id, trigger="manual"
            )
        )
        await conn.execute(
            sa.insert(snapshots).values(
                closing_id=closing_id, iteration_id=first, content_hash=content_hash
            )
        )
    fetched = (await client.get(f"{API}/closings/{closing_id}", headers=bearer(key))).json()
    assert fetched["latest_iteration"] == {"number": 2, "status": "queued"}
    assert fetched["snapshot"] == {"iteration": 1, "content_hash": content_hash}
    listed = await client.get(f"{API}/clients/{closing['client_id']}/closings", headers=bearer(key))
    assert listed.json()["items"] == [fetched]


async def test_roles_and_tenants(client: AsyncClient, make_key: KeyMaker) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    owner = await make_key("analyst", tenant=tenant)
    viewer = await make_key("viewer", tenant=tenant)
    stranger = await make_key("admin")
    client_id = await _new_client(client, owner)
    closing_id = (await _open(client, owner, client_id, "2026-10")).json()["id"]
    list_url = f"{API}/clients/{client_id}/closings"
    closing_url = f"{API}/closings/{closing_id}"
    patch = {"status": "closed"}

    # Another tenant, even an admin, sees nothing: exactly like a missing resource.
    _assert_problem(await _open(client, stranger, client_id, "2026-11"), 404)
    _assert_problem(await client.get(list_url, headers=bearer(stranger)), 404)
    _assert_problem(await client.get(closing_url, headers=bearer(stranger)), 404)
    _assert_problem(await client.patch(closing_url, json=patch, headers=bearer(stranger)), 404)
    missing = f"{API}/closings/{uuid.uuid4()}"
    _assert_problem(await client.get(missing, headers=bearer(owner)), 404)
    _assert_problem(await client.patch(missing, json=patch, headers=bearer(owner)), 404)
    _assert_problem(await _open(client, owner, str(uuid.uuid4()), "2026-11"), 404)

    # A viewer of the same tenant reads but cannot write.
    assert (await client.get(closing_url, headers=bearer(viewer))).status_code == 200
    assert (await client.get(list_url, headers=bearer(viewer))).status_code == 200
    _assert_problem(await _open(client, viewer, client_id, "2026-11"), 403)
    _assert_problem(await client.patch(closing_url, json=patch, headers=bearer(viewer)), 403)
    _assert_problem(await client.get(closing_url), 401)
    listed = (await client.get(list_url, headers=bearer(owner))).json()["items"]
    assert [(c["period"], c["status"]) for c in listed] == [("2026-10", "open")]
