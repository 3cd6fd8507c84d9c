"""The audit trail (SPEC §9): every change writes its entry with its actor and before/after,
in the change's transaction; nobody can rewrite it; tenants and roles are isolated."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.exc import DBAPIError

from app.api.state import app_state
from app.services.tenancy import api_keys
from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import API, assert_problem, create_closing, get_json, upload

LEDGER = b"fecha,comprobante,cuenta,tipo_doc,debe,haber\n2026-10-01,V1,410101,FAC,5,0\n"


async def _events(client: AsyncClient, admin: str, **params: Any) -> list[dict[str, Any]]:
    page = await get_json(client, admin, "/audit", **params)
    items: list[dict[str, Any]] = page["items"]
    return items


async def test_each_change_is_recorded_with_its_actor_and_before_after(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    tenant = f"audit-{uuid.uuid4().hex[:8]}"
    ana = await make_key("analyst", tenant=tenant, name="ana")
    admin = await make_key("admin", tenant=tenant, name="boss")
    chart = [{"code": "410101", "name": "Ventas", "classification": None}]
    closing = await create_closing(
        client, ana, chart=chart, doc_types=[{"code": "FAC", "name": "F"}]
    )
    accounts = f"{API}/clients/{closing.client_id}/accounts"
    fix = [{"code": "410101", "name": "Ventas", "classification": "revenue"}]
    changed = await client.put(
        accounts, json=fix, headers={**bearer(ana), "X-Request-ID": "req-classify-1"}
    )
    assert changed.status_code == 200, changed.text
    assert (await upload(client, ana, closing.id, LEDGER, filename="oct.csv")).status_code == 202
    reprocess = f"{API}/closings/{closing.id}/reprocess"
    assert (
        await client.post(reprocess, json={"notes": "n"}, headers=bearer(ana))
    ).status_code == 202
    patch = f"{API}/closings/{closing.id}"
    for status in ("closed", "open"):
        done = await client.patch(patch, json={"status": status}, headers=bearer(ana))
        assert done.status_code == 200, done.text
    invalidate = f"{API}/admin/cache/invalidate"
    body = {"closing_id": closing.id}
    assert (await client.post(invalidate, json=body, headers=bearer(admin))).status_code == 200

    events = await _events(client, admin)
    actions = [event["action"] for event in reversed(events)]  # oldest first
    assert actions == [
        "api_key.created",  # the two keys of this test (made as the command line makes them)
        "api_key.created",
        "client.created",
        "account.created",
        "document_type.created",
        "closing.created",
        "account.updated",
        "ledger.uploaded",
        "closing.reprocess_requested",
        "closing.closed",
        "closing.reopened",
        "cache.invalidated",
    ]
    by_action = {event["action"]: event for event in events}
    updated = by_action["account.updated"]
    assert updated["actor"]["name"] == "ana" and updated["actor"]["role"] == "analyst"
    assert updated["resource"] == {"type": "account", "id": "410101"}
    assert updated["client_id"] == closing.client_id and updated["request_id"] == "req-classify-1"
    assert updated["details"] == {
        "changes": {"classification": {"before": None, "after": "revenue"}}
    }
    created = by_action["account.created"]["details"]["changes"]
    assert created["name"] == {"before": None, "after": "Ventas"}
    uploaded = by_action["ledger.uploaded"]
    assert uploaded["closing_id"] == closing.id
    assert uploaded["details"] == {
        "filename": "oct.csv",
        "size_bytes": len(LEDGER),
        "sha256": hashlib.sha256(LEDGER).hexdigest(),
        "iteration": 1,
    }
    assert by_action["closing.closed"]["details"]["status"] == {"before": "open", "after": "closed"}
    assert by_action["closing.reprocess_requested"]["details"] == {"notes": "n", "iteration": 1}
    cache = by_action["cache.invalidated"]
    assert (cache["actor"]["name"], cache["details"]["scope"]) == ("boss", "closing")
    assert all(e["actor"]["key_id"] for e in events if not e["action"].startswith("api_key."))

    only = await _events(client, admin, action="closing.closed", closing_id=closing.id)
    assert [event["action"] for event in only] == ["closing.closed"]
    assert await _events(client, admin, actor="nobody") == []


async def test_api_keys_created_and_revoked_by_the_command_line_are_recorded(app: FastAPI) -> None:
    tenant = f"keys-{uuid.uuid4().hex[:8]}"
    engine = app_state(app).require_resources().engine
    async with engine.begin() as conn:
        await api_keys.create_key(conn, tenant=tenant, role="viewer", name="dash")
        (info,) = await api_keys.list_keys(conn, tenant)
        assert await api_keys.revoke_key(conn, info.id)
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT action, actor_name, actor_role, actor_key_id, resource_id, details "
                    "FROM audit_events WHERE resource_type = 'api_key' AND resource_id = :id "
                    "ORDER BY id"
                ),
                {"id": str(info.id)},
            )
        ).all()
    assert [row.action for row in rows] == ["api_key.created", "api_key.revoked"]
    assert all(row.actor_name.startswith("cli:") and row.actor_role == "operator" for row in rows)
    assert rows[0].actor_key_id is None and rows[0].details == {"name": "dash", "role": "viewer"}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'rewritten'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ],
)
async def test_the_database_refuses_to_rewrite_history(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, statement: str
) -> None:
    admin = await make_key("admin")
    await client.post(f"{API}/clients", json={"name": "Kept"}, headers=bearer(admin))
    engine = app_state(app).require_resources().engine
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(sa.text(statement))
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM audit_events")) > 0


async def test_tenants_see_only_their_own_events_and_viewers_none(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    mine = await make_key("admin")
    theirs = await make_key("admin")
    viewer = await make_key("viewer")
    created = await client.post(f"{API}/clients", json={"name": "Private"}, headers=bearer(theirs))
    client_id = created.json()["id"]
    assert await _events(client, mine, client_id=client_id) == []
    assert all(e.get("client_id") != client_id for e in await _events(client, mine))
    assert [e["action"] for e in await _events(client, theirs, client_id=client_id)] == [
        "client.created"
    ]
    assert_problem(await client.get(f"{API}/audit", headers=bearer(viewer)), 403)
    history = f"{API}/clients/{client_id}/accounts/1101/history"
    assert_problem(await client.get(history, headers=bearer(mine)), 404)


async def test_an_accounts_history_pages_newest_first(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    tenant = f"history-{uuid.uuid4().hex[:8]}"
    analyst = await make_key("analyst", tenant=tenant)
    viewer = await make_key("viewer", tenant=tenant)
    closing = await create_closing(client, analyst)
    url = f"{API}/clients/{closing.client_id}/accounts"
    for classification in ("assets", "liabilities", "equity"):
        row = {"code": " 1101 ", "name": "Caja", "classification": classification}
        assert (await client.put(url, json=[row], headers=bearer(analyst))).status_code == 200
    other = [{"code": "2101", "name": "Banco"}]
    assert (await client.put(url, json=other, headers=bearer(analyst))).status_code == 200
    path = f"/clients/{closing.client_id}/accounts/1101/history"
    pages, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = await get_json(client, viewer, path, **params)
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    events = [item for items in pages for item in items]
    assert [len(items) for items in pages] == [1, 1, 1]
    assert [e["action"] for e in events] == [
        "account.updated",
        "account.updated",
        "account.created",
    ]
    assert [e["details"]["changes"]["classification"]["after"] for e in events] == [
        "equity",
        "liabilities",
        "assets",
    ]
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    assert (await get_json(client, viewer, path, limit=10))["items"] == events


async def test_the_history_of_an_account_whose_code_holds_a_slash(
    client: AsyncClient, make_key: KeyMaker
) -> None:
    """Codes are free text: `10/20`, sent as `10%2F20` (or as it is), names one account."""
    analyst = await make_key("analyst")
    closing = await create_closing(client, analyst)
    url = f"{API}/clients/{closing.client_id}/accounts"
    rows = [{"code": "10/20", "name": "Caja"}, {"code": "20", "name": "Banco"}]
    assert (await client.put(url, json=rows, headers=bearer(analyst))).status_code == 200
    for code in ("10%2F20", "10/20"):
        page = await get_json(
            client, analyst, f"/clients/{closing.client_id}/accounts/{code}/history"
        )
        assert [(e["action"], e["resource"]["id"]) for e in page["items"]] == [
            ("account.created", "10/20")
        ]


async def test_a_bulk_put_writes_its_audit_rows_in_one_statement(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker
) -> None:
    analyst = await make_key("analyst")
    admin_of_other = await make_key("admin")
    closing = await create_closing(client, analyst)
    chart = [{"code": f"{n:06d}", "name": f"Account {n}"} for n in range(10_000)]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "audit_events" in statement:
            statements.append(statement)

    engine = app_state(app).require_resources().engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        url = f"{API}/clients/{closing.client_id}/accounts"
        put = await client.put(url, json=chart, headers=bearer(analyst))
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert put.status_code == 200 and put.json()["created"] == 10_000, put.text
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("INSERT")
    async with app_state(app).require_resources().engine.connect() as conn:
        written = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM audit_events WHERE client_id = :client "
                "AND action = 'account.created'"
            ),
            {"client": closing.client_id},
        )
    assert written == 10_000
    assert await _events(client, admin_of_other, client_id=closing.client_id) == []  # tenant
