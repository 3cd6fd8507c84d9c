"""Chart of accounts and document types over HTTP: JSON and CSV upserts, filters, triggers."""

from __future__ import annotations

import csv
import uuid
from typing import Any

import sqlalchemy as sa
from arq.constants import job_key_prefix
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.adapters.postgres.tables import closings, ledgers
from app.adapters.queue import iteration_job_id
from app.api.middleware.body_limit import BULK_BODY_BYTES
from app.api.state import app_state
from tests.conftest import KeyMaker, bearer
from tests.paths import PUBLIC_DATA

API = "/api/v1"


async def _new_client(http: AsyncClient, key: str) -> str:
    response = await http.post(f"{API}/clients", json={"name": "Andes"}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _csv(key: str) -> dict[str, str]:
    return {**bearer(key), "Content-Type": "text/csv"}


def _assert_problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_json_upsert_counts_and_listing(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    url = f"{API}/clients/{await _new_client(client, key)}/accounts"
    first = [
        {"code": "2000", "name": "Payables", "classification": "current_liabilities"},
        {"code": " 0100 ", "name": "Cash", "name_en": "Cash"},
    ]
    response = await client.put(url, json=first, headers=bearer(key))
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 2, "updated": 0, "iterations": []}

    second = [
        {"code": "2000", "name": "Payables", "classification": "current_liabilities"},
        {"code": "0100", "name": "Cash and banks"},
        {"code": "3000", "name": "Equity"},
    ]
    response = await client.put(url, json=second, headers=bearer(key))
    assert response.json() == {"created": 1, "updated": 1, "iterations": []}

    items = (await client.get(url, headers=bearer(key))).json()["items"]
    assert [item["code"] for item in items] == sorted(["0100", "2000", "3000"])
    cash = items[0]
    # name_en was not sent the second time, so it kept its value.
    assert (cash["name"], cash["name_en"], cash["classification"]) == (
        "Cash and banks",
        "Cash",
        None,
    )

    response = await client.put(
        url, json=[{"code": "0100", "name": "Cash and banks", "name_en": ""}], headers=bearer(key)
    )
    assert response.json()["updated"] == 1
    items = (await client.get(url, headers=bearer(key))).json()["items"]
    assert items[0]["name_en"] is None


async def test_public_chart_csv(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    url = f"{API}/clients/{await _new_client(client, key)}/accounts"
    path = PUBLIC_DATA / "chart_of_accounts.csv"
    with path.open(newline="", encoding="utf-8-sig") as fh:
        expected = {row["account"]: row["account_name"] for row in csv.DictReader(fh)}

    response = await client.put(url, content=path.read_bytes(), headers=_csv(key))
    assert response.status_code == 200, response.text
    assert response.json()["created"] == len(expected) == 18
    items = (await client.get(url, headers=bearer(key))).json()["items"]
    assert {item["code"]: item["name"] for item in items} == expected
    assert [item["code"] for item in items] == sorted(expected)

    again = await client.put(url, content=path.read_bytes(), headers=_csv(key))
    assert again.json() == {"created": 0, "updated": 0, "iterations": []}


async def test_csv_variants(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    url = f"{API}/clients/{await _new_client(client, key)}/accounts"
    body = "\ufeffcuenta;nombre;name_en;clasificación\n0011;Caja;;activo\n".encode()
    response = await client.put(url, content=body, headers=_csv(key))
    assert response.json()["created"] == 1
    cp1252 = "code\tname\n0011\tCaja pequeña\n".encode("cp1252")
    response = await client.put(url, content=cp1252, headers=_csv(key))
    assert response.json() == {"created": 0, "updated": 1, "iterations": []}
    (item,) = (await client.get(url, headers=bearer(key))).json()["items"]
    assert (item["code"], item["name"], item["classification"]) == (
        "0011",
        "Caja pequeña",
        "activo",
    )
    mapped = await client.put(
        url,
        params={"column_map": '{"classification": "type"}'},
        content=b"account,account_name,type\n0011,Caja peque\xc3\xb1a,Asset\n",
        headers=_csv(key),
    )
    assert mapped.json()["updated"] == 1


async def test_filters(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    url = f"{API}/clients/{await _new_client(client, key)}/accounts"
    rows = [
        {"code": "1", "name": "a", "name_en": "A", "classification": "x"},
        {"code": "2", "name": "b", "name_en": "B", "classification": " "},
        {"code": "3", "name": "c", "classification": "z"},
        {"code": "4", "name": "d"},
    ]
    await client.put(url, json=rows, headers=bearer(key))

    async def codes(**params: str) -> list[str]:
        response = await client.get(url, params=params, headers=bearer(key))
        return [item["code"] for item in response.json()["items"]]

    unclassified = [r["code"] for r in rows if not (r.get("classification") or "").strip()]
    no_english = [r["code"] for r in rows if not r.get("name_en")]
    assert await codes(unclassified="true") == unclassified
    assert await codes(missing_english="true") == no_english
    both = [c for c in unclassified if c in no_english]
    assert await codes(unclassified="true", missing_english="true") == both
    assert await codes() == [r["code"] for r in rows]


async def test_validation_errors(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    url = f"{API}/clients/{await _new_client(client, key)}/accounts"
    dup = [{"code": "1", "name": "a"}, {"code": "2", "name": "b"}, {"code": "1 ", "name": "c"}]
    body = _assert_problem(await client.put(url, json=dup, headers=bearer(key)), 422)
    assert "duplicate code '1' at item 0, item 2" in str(body["detail"])

    csv_body = b"code,name\n1,a\n1,b\n"
    body = _assert_problem(await client.put(url, content=csv_body, headers=_csv(key)), 422)
    assert "line 2, line 3" in str(body["detail"])

    body = _assert_problem(
        await client.put(url, content=b"account,type\n1,Asset\n", headers=_csv(key)), 422
    )
    assert "name" in str(body["detail"])

    body = _assert_problem(
        await client.put(url, json=[{"code": "", "name": "a"}], headers=bearer(key)), 422
    )
    assert body["errors"][0]["loc"] == ["body", 0, "code"]
    _assert_problem(
        await client.put(url, json=[{"code": "1", "name": "a", "x": 1}], headers=bearer(key)), 422
    )
    _assert_problem(await client.put(url, json={"code": "1"}, headers=bearer(key)), 422)
    _assert_problem(
        await client.put(
            url, content=b"[{", headers={**bearer(key), "Content-Type": "application/json"}
        ),
        422,
    )
    _assert_problem(
        await client.put(
            url, content=b"<x/>", headers={**bearer(key), "Content-Type": "application/xml"}
        ),
        415,
    )
    # Nothing of the failed requests was stored.
    assert (await client.get(url, headers=bearer(key))).json() == {"items": []}


async def test_document_types(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    url = f"{API}/clients/{await _new_client(client, key)}/document-types"
    response = await client.put(
        url,
        json=[{"code": " fac ", "name": "Factura"}, {"code": "bol", "name": "Boleta"}],
        headers=bearer(key),
    )
    assert response.json() == {"created": 2, "updated": 0, "iterations": []}
    csv_body = b"tipo_doc;descripcion\nFAC;Factura\nnc;Nota de credito\nBOL;Boleta electronica\n"
    response = await client.put(url, content=csv_body, headers=_csv(key))
    assert response.json() == {"created": 1, "updated": 1, "iterations": []}
    items = (await client.get(url, headers=bearer(key))).json()["items"]
    assert [(i["code"], i["name"]) for i in items] == [
        ("BOL", "Boleta electronica"),
        ("FAC", "Factura"),
        ("NC", "Nota de credito"),
    ]
    dup = [{"code": "fac", "name": "a"}, {"code": "FAC", "name": "b"}]
    body = _assert_problem(await client.put(url, json=dup, headers=bearer(key)), 422)
    assert "'FAC'" in str(body["detail"])


async def _closing_with_ledger(
    app: FastAPI, http: AsyncClient, key: str, client_id: str, period: str, codes: list[str]
) -> str:
    """An open closing whose (already parsed) ledger uses `codes`, stored directly."""
    response = await http.post(
        f"{API}/clients/{client_id}/closings", json={"period": period}, headers=bearer(key)
    )
    closing_id = uuid.UUID(response.json()["id"])
    async with app_state(app).resources.engine.begin() as conn:
        ledger_id = await conn.scalar(
            sa.insert(ledgers)
            .values(
                closing_id=closing_id,
                size_bytes=0,
                sha256="0" * 64,
                layout={},
                account_codes=codes,
                document_type_codes=[],
                parsed_at=sa.func.now(),
            )
            .returning(ledgers.c.id)
        )
        await conn.execute(
            sa.update(closings).where(closings.c.id == closing_id).values(ledger_id=ledger_id)
        )
    return str(closing_id)


async def test_changes_queue_iterations_of_affected_closings(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker
) -> None:
    key = await make_key("analyst", name="chart-bot")
    client_id = await _new_client(client, key)
    url = f"{API}/clients/{client_id}/accounts"
    await client.put(
        url,
        json=[{"code": "1000", "name": "Cash"}, {"code": "2000", "name": "AP"}],
        headers=bearer(key),
    )
    uses_1000 = await _closing_with_ledger(app, client, key, client_id, "2026-09", ["1000", "4000"])
    await _closing_with_ledger(app, client, key, client_id, "2026-10", ["2000"])

    change = [{"code": "1000", "name": "Cash", "classification": "current_assets"}]
    response = await client.put(url, json=change, headers=bearer(key))
    body = response.json()
    assert (body["created"], body["updated"]) == (0, 1)
    (iteration,) = body["iterations"]
    assert iteration["closing_id"] == uses_1000
    assert (iteration["trigger"], iteration["status"]) == ("classification_updated", "queued")
    assert iteration["requested_by"] == "chart-bot"
    prefix = app_state(app).resources.settings.redis_key_prefix
    job = job_key_prefix + iteration_job_id(prefix, uuid.UUID(iteration["id"]), 0)
    assert await app_state(app).resources.redis.exists(job) == 1

    change = [{"code": "1000", "name": "Cash", "name_en": "Cash"}]
    (merged,) = (await client.put(url, json=change, headers=bearer(key))).json()["iterations"]
    assert merged["id"] == iteration["id"]
    assert merged["coalesced_triggers"] == ["english_names_updated"]

    # A code the ledger uses but the chart lacked: creating it re-processes too.
    created = await client.put(url, json=[{"code": "4000", "name": "Sales"}], headers=bearer(key))
    (again,) = created.json()["iterations"]
    assert again["coalesced_triggers"] == ["english_names_updated", "accounts_updated"]


async def test_roles_and_tenants(client: AsyncClient, make_key: KeyMaker) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    owner = await make_key("analyst", tenant=tenant)
    viewer = await make_key("viewer", tenant=tenant)
    stranger = await make_key("admin")
    client_id = await _new_client(client, owner)
    rows = [{"code": "1", "name": "a"}]
    for url in (f"{API}/clients/{client_id}/accounts", f"{API}/clients/{client_id}/document-types"):
        # Another tenant, even an admin, gets 404 exactly like for a missing client.
        _assert_problem(await client.put(url, json=rows, headers=bearer(stranger)), 404)
        _assert_problem(await client.get(url, headers=bearer(stranger)), 404)
        missing = url.replace(client_id, str(uuid.uuid4()))
        _assert_problem(await client.get(missing, headers=bearer(owner)), 404)
        _assert_problem(await client.put(missing, json=rows, headers=bearer(owner)), 404)
        _assert_problem(await client.put(url, json=rows, headers=bearer(viewer)), 403)
        _assert_problem(await client.put(url, json=rows), 401)
        assert (await client.get(url, headers=bearer(viewer))).json() == {"items": []}


async def test_body_limits(client: AsyncClient, make_key: KeyMaker) -> None:
    key = await make_key("analyst")
    url = f"{API}/clients/{await _new_client(client, key)}/document-types"
    huge = b"code,name\n" + b"X," + b"n" * (BULK_BODY_BYTES + 1) + b"\n"
    _assert_problem(await client.put(url, content=huge, headers=_csv(key)), 413)
    untyped = await client.put(url, content=b"code,name\n", headers=bearer(key))
    assert "no Content-Type" in _assert_problem(untyped, 415)["detail"]
    charset = {**bearer(key), "Content-Type": "text/csv; charset=utf-8"}
    response = await client.put(url, content=b"code,name\nfac,Factura\n", headers=charset)
    assert response.json()["created"] == 1
