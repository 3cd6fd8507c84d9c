"""Upload → worker → snapshot, over HTTP with a real worker (burst mode)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from httpx import AsyncClient

from tests.conftest import KeyMaker, bearer

LEDGER = (
    "fecha,comprobante,cuenta,tipo_doc,glosa,debe,haber\n"
    "2026-10-01,V1,1101,FAC,venta,100.00,0\n"
    "2026-10-01,V1,4101,FAC,venta,0,100.00\n"
    "2026-10-02,V2,1101,XX,pago,50.00,0\n"
    "2026-10-02,V2,9999,,pago,0,40.00\n"
    "31/02/2026,V3,1101,FAC,malo,1,0\n"
)


async def _closing(client: AsyncClient, key: str) -> str:
    created = await client.post("/api/v1/clients", json={"name": "Flow"}, headers=bearer(key))
    client_id = created.json()["id"]
    chart = [
        {"code": "1101", "name": "Caja", "name_en": "Cash", "classification": "current_assets"},
        {"code": "4101", "name": "Ventas", "name_en": None, "classification": "revenue"},
    ]
    await client.put(f"/api/v1/clients/{client_id}/accounts", json=chart, headers=bearer(key))
    await client.put(
        f"/api/v1/clients/{client_id}/document-types",
        json=[{"code": "FAC", "name": "Factura"}],
        headers=bearer(key),
    )
    closing = await client.post(
        f"/api/v1/clients/{client_id}/closings", json={"period": "2026-10"}, headers=bearer(key)
    )
    assert closing.status_code == 201, closing.text
    return str(closing.json()["id"])


async def test_upload_process_and_read(
    client: AsyncClient, make_key: KeyMaker, run_worker: Callable[[], Awaitable[None]]
) -> None:
    key = await make_key("analyst")
    closing_id = await _closing(client, key)
    response = await client.post(
        f"/api/v1/closings/{closing_id}/ledger",
        files={"file": ("ledger.csv", LEDGER.encode(), "text/csv")},
        headers=bearer(key),
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    assert response.headers["Location"] == f"/api/v1/closings/{closing_id}/iterations/1"

    await run_worker()

    iteration = await client.get(response.headers["Location"], headers=bearer(key))
    body = iteration.json()
    assert body["status"] == "succeeded", body
    assert body["movements_processed"] == 5
    assert body["trigger"] == "initial"

    snapshot = await client.get(f"/api/v1/closings/{closing_id}/incidences", headers=bearer(key))
    assert snapshot.status_code == 200
    document = snapshot.json()
    keys = {i["key"]: i for i in document["incidences"]}
    assert document["statistics"]["movements_total"] == 5
    assert document["statistics"]["movements_rejected"] == 1
    assert keys["ROW_INVALID:date"]["sample_lines"] == [6]
    assert keys["ACCOUNT_NOT_IN_CHART:9999"]["credit_total"] == "40.00"
    assert keys["VOUCHER_UNBALANCED:V2"]["movement_count"] == 2
    assert keys["ACCOUNT_MISSING_ENGLISH_NAME:4101"]["movement_count"] == 1
    assert keys["DOCUMENT_TYPE_UNKNOWN:XX"]["movement_count"] == 1
    assert keys["DOCUMENT_TYPE_MISSING:"]["sample_lines"] == [5]
    assert snapshot.headers["ETag"] == f'"{document["content_hash"]}-gzip"'  # httpx: gzip

    cached = await client.get(
        f"/api/v1/closings/{closing_id}/incidences",
        headers={**bearer(key), "If-None-Match": snapshot.headers["ETag"]},
    )
    assert cached.status_code == 304

    movements = await client.get(
        f"/api/v1/closings/{closing_id}/incidences/VOUCHER_UNBALANCED:V2/movements",
        params={"limit": 1},
        headers=bearer(key),
    )
    page = movements.json()
    assert [m["line"] for m in page["items"]] == [4]
    assert page["items"][0]["debit"] == "50.00"
    assert page["items"][0]["date"] == "2026-10-02"
    assert page["next_cursor"] is not None
    second = await client.get(
        f"/api/v1/closings/{closing_id}/incidences/VOUCHER_UNBALANCED:V2/movements",
        params={"limit": 1, "cursor": page["next_cursor"]},
        headers=bearer(key),
    )
    assert [m["line"] for m in second.json()["items"]] == [5]
    assert second.json()["next_cursor"] is None
