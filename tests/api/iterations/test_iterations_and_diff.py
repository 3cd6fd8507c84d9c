"""Iteration history, diffs, first_seen_iteration, a failed run, and the snapshot's HTTP caching
(SPEC §4-§6). Expected incidences and diffs are computed here with tests/helpers.py's rules."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from httpx import AsyncClient

from app.services.iterations import evaluate as evaluation
from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import (
    API,
    Account,
    Expected,
    Movement,
    assert_incidences,
    assert_problem,
    chart_json,
    create_closing,
    expected_incidences,
    get_json,
    upload,
)

PERIOD = "2026-10"
CHART = {
    "1101": Account("Caja", "Cash", "current_assets"),
    "4101": Account("Ventas", None, "revenue"),
    "5101": Account("Costo", "Cost", None),
}
DOC_TYPES = {"FAC": "Factura"}
HEADER = "fecha,comprobante,cuenta,tipo_doc,glosa,debe,haber\n"
L1 = HEADER + (
    "2026-10-01,V1,1101,FAC,venta,100.00,0\n"
    "2026-10-01,V1,4101,FAC,venta,0,100.00\n"
    "2026-10-02,V2,5101,FAC,costo,30.00,0\n"
    "2026-10-02,V2,1101,FAC,costo,0,20.00\n"
    "2026-09-30,V3,9999,XX,viejo,5,0\n"
    "2026-09-30,V3,1101,FAC,viejo,0,5\n"
)
# V2 balanced (resolved), a new voucher V4 changes 9999 and 2026-09 and adds a missing doc type.
L2 = L1.replace("0,20.00", "0,30.00") + (
    "2026-09-29,V4,9999,,nuevo,8,0\n2026-09-29,V4,1101,FAC,nuevo,0,8\n"
)
SPEC_FIELDS = {
    "number",
    "trigger",
    "coalesced_triggers",
    "status",
    "progress",
    "requested_by",
    "notes",
    "queued_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "movements_processed",
    "error",
    "summary",
    "diff",
}


def expected(ledger: str, chart: dict[str, Account] = CHART) -> dict[str, Expected]:
    movements = [
        Movement(
            line=line,
            account_code=row["cuenta"],
            date=dt.date.fromisoformat(row["fecha"]),
            voucher=row["comprobante"],
            debit=Decimal(row["debe"]),
            credit=Decimal(row["haber"]),
            document_type=row["tipo_doc"] or None,
            description=row["glosa"] or None,
        )
        for line, row in enumerate(csv.DictReader(io.StringIO(ledger)), start=2)
    ]
    return expected_incidences(movements, chart, PERIOD, doc_types=DOC_TYPES)


def assert_diff(diff: dict[str, Any], before: dict[str, Expected], after: dict[str, Expected]):
    both = before.keys() & after.keys()

    def figures(e: Expected) -> tuple[int, Decimal, Decimal]:
        return e.count, e.debit, e.credit

    changed = sorted(k for k in both if figures(before[k]) != figures(after[k]))
    assert sorted(diff["new"]) == sorted(after.keys() - before.keys())
    assert sorted(diff["resolved"]) == sorted(before.keys() - after.keys())
    assert sorted(c["key"] for c in diff["changed"]) == changed
    for change in diff["changed"]:
        for side, source in (("before", before), ("after", after)):
            got = change[side]
            want = figures(source[change["key"]])
            assert (
                got["movement_count"],
                Decimal(got["debit_total"]),
                Decimal(got["credit_total"]),
            ) == want
    assert diff["unchanged"] == len(both) - len(changed)


async def run(client: AsyncClient, key: str, closing: str, number: int, worker: Worker) -> dict:
    await worker()
    iteration: dict = await get_json(client, key, f"/closings/{closing}/iterations/{number}")
    assert iteration["status"] in ("succeeded", "failed"), iteration
    return iteration


async def snapshot(client: AsyncClient, key: str, closing: str) -> dict:
    return await get_json(client, key, f"/closings/{closing}/incidences")  # type: ignore[no-any-return]


async def test_history_diffs_first_seen_and_failure(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await make_key("analyst", tenant="history", name="ana")
    maria = await make_key("analyst", tenant="history", name="maria")
    closing = (
        await create_closing(
            client, key, chart=chart_json(CHART), doc_types=[{"code": "FAC", "name": "Factura"}]
        )
    ).id
    results: dict[int, dict[str, Expected]] = {}  # succeeded iteration → its expected set
    first_seen: dict[str, int] = {}

    async def check(number: int, ledger: str, chart: dict[str, Account] = CHART) -> dict:
        iteration = await run(client, key, closing, number, run_worker)
        assert iteration["status"] == "succeeded", iteration
        want = expected(ledger, chart)
        document = await snapshot(client, key, closing)
        assert document["iteration"] == number
        assert_incidences(document, want)
        previous = results[max(results)] if results else {}
        assert_diff(iteration["diff"], previous, want)
        for k in want:
            first_seen[k] = first_seen[k] if k in previous else number
        assert {i["key"]: i["first_seen_iteration"] for i in document["incidences"]} == {
            k: first_seen[k] for k in want
        }
        assert iteration["summary"]["content_hash"] == document["content_hash"]
        results[number] = want
        return document

    assert (await upload(client, key, closing, L1.encode())).status_code == 202
    await check(1, L1)
    assert (await upload(client, key, closing, L2.encode())).status_code == 202
    await check(2, L2)
    assert expected(L1).keys() - expected(L2).keys() == {"VOUCHER_UNBALANCED:V2"}
    assert (await upload(client, key, closing, L1.encode())).status_code == 202
    third = await check(3, L1)  # V2 is unbalanced again: a new run starts at 3
    seen = {i["key"]: i["first_seen_iteration"] for i in third["incidences"]}
    assert seen["VOUCHER_UNBALANCED:V2"] == 3 and seen["ACCOUNT_MISSING_ENGLISH_NAME:4101"] == 1

    reprocess = await client.post(
        f"{API}/closings/{closing}/reprocess", json={"notes": "after review"}, headers=bearer(maria)
    )
    assert reprocess.status_code == 202, reprocess.text
    assert reprocess.headers["Location"] == f"{API}/closings/{closing}/iterations/4"
    manual = reprocess.json()
    assert (manual["number"], manual["trigger"], manual["status"]) == (4, "manual", "queued")
    assert (manual["requested_by"], manual["notes"]) == ("maria", "after review")
    fourth = await check(4, L1)

    # A run whose evaluation raises ends failed; the previous snapshot keeps being served.
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(evaluation, "evaluate", explode)
    again = await client.post(f"{API}/closings/{closing}/reprocess", json={}, headers=bearer(key))
    assert again.status_code == 202, again.text
    failed = await run(client, key, closing, 5, run_worker)
    monkeypatch.undo()
    assert failed["status"] == "failed"
    assert {"type", "title", "status", "detail"} <= failed["error"].keys()
    assert "engine exploded" not in failed["error"]["detail"]
    assert failed["summary"] is None and failed["diff"] is None
    assert (await snapshot(client, key, closing))["content_hash"] == fourth["content_hash"]

    # A chart change re-processes the closing by itself; its diff is against iteration 4.
    named = {**CHART, "4101": Account("Ventas", "Sales", "revenue")}
    put = await client.put(
        f"{API}/clients/{(await get_json(client, key, f'/closings/{closing}'))['client_id']}"
        "/accounts",
        json=chart_json(named),
        headers=bearer(key),
    )
    assert put.status_code == 200, put.text
    assert [(i["number"], i["trigger"]) for i in put.json()["iterations"]] == [
        (6, "english_names_updated")
    ]
    await check(6, L1, named)

    history = (await get_json(client, key, f"/closings/{closing}/iterations"))["items"]
    assert [i["number"] for i in history] == [6, 5, 4, 3, 2, 1]
    assert [i["status"] for i in history] == ["succeeded", "failed", *["succeeded"] * 4]
    assert [i["trigger"] for i in history] == [
        "english_names_updated",
        "manual",
        "manual",
        "ledger_replaced",
        "ledger_replaced",
        "initial",
    ]
    for item in history:
        assert item.keys() >= SPEC_FIELDS
        assert item["duration_ms"] >= 0 and item["finished_at"] >= item["started_at"]
        if item["status"] == "succeeded":
            assert item["progress"] == 1 and item["summary"] is not None
    assert history[2]["notes"] == "after review" and history[5]["requested_by"] == "ana"

    # Any two succeeded iterations compare; the stored diff is the one against the previous.
    for before, after in ((1, 2), (2, 3), (1, 3), (3, 1), (4, 6)):
        diff = await get_json(
            client, key, f"/closings/{closing}/diff", **{"from": before, "to": after}
        )
        assert (diff["from"], diff["to"]) == (before, after)
        assert_diff(diff, results[before], results[after])
    stored = await get_json(client, key, f"/closings/{closing}/iterations/2")
    direct = await get_json(client, key, f"/closings/{closing}/diff", **{"from": 1, "to": 2})
    assert {k: direct[k] for k in stored["diff"]} == stored["diff"]
    for bad, status in (((4, 5), 409), ((5, 6), 409), ((1, 99), 404), ((99, 1), 404)):
        response = await client.get(
            f"{API}/closings/{closing}/diff",
            params={"from": bad[0], "to": bad[1]},
            headers=bearer(key),
        )
        assert_problem(response, status)
    assert_problem(
        await client.get(f"{API}/closings/{closing}/iterations/99", headers=bearer(key)), 404
    )


async def test_snapshot_etag_and_cache_headers(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    closing = (
        await create_closing(
            client, key, chart=chart_json(CHART), doc_types=[{"code": "FAC", "name": "Factura"}]
        )
    ).id
    path = f"{API}/closings/{closing}/incidences"
    assert_problem(await client.get(path, headers=bearer(key)), 404)  # nothing uploaded
    assert (await upload(client, key, closing, L2.encode())).status_code == 202
    assert_problem(await client.get(path, headers=bearer(key)), 404)  # queued, not succeeded
    await run_worker()

    whole = await client.get(path, headers=bearer(key))
    document = whole.json()
    assert whole.headers["ETag"] == f'"{document["content_hash"]}-gzip"'  # httpx accepts gzip
    assert whole.headers["Cache-Control"] == "private, no-cache"
    incidences = document["incidences"]
    assert len(incidences) >= 5
    a_type = incidences[-1]["type"]
    views: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
        ({}, incidences),
        ({"type": a_type}, [i for i in incidences if i["type"] == a_type]),
        ({"severity": "error"}, [i for i in incidences if i["severity"] == "error"]),
        ({"severity": "warning"}, [i for i in incidences if i["severity"] == "warning"]),
        ({"limit": 2}, incidences[:2]),
        ({"limit": 2, "offset": 2}, incidences[2:4]),
        ({"offset": 1}, incidences[1:]),
    ]
    etags = []
    for params, items in views:
        response = await client.get(path, params=params, headers=bearer(key))
        assert response.status_code == 200, response.text
        assert response.json()["incidences"] == items, params
        assert response.headers["Cache-Control"] == "private, no-cache"
        etag = response.headers["ETag"]
        etags.append(etag)
        cached = await client.get(
            path, params=params, headers={**bearer(key), "If-None-Match": f'"other", {etag}'}
        )
        assert cached.status_code == 304, params
        assert cached.content == b""
        assert (cached.headers["ETag"], cached.headers["Cache-Control"]) == (
            etag,
            "private, no-cache",
        )
    assert len(set(etags)) == len(views)  # every view has its own validator
    for weak in ("*", f"W/{etags[0]}"):  # RFC 9110 §13.1.2: `*`, and weak comparison
        matched = await client.get(path, headers={**bearer(key), "If-None-Match": weak})
        assert matched.status_code == 304, weak
    stale = await client.get(
        path, params={"limit": 2}, headers={**bearer(key), "If-None-Match": etags[0]}
    )
    assert stale.status_code == 200

    # A new result with other content: the old validator no longer matches.
    assert (await upload(client, key, closing, L1.encode())).status_code == 202
    await run_worker()
    fresh = await client.get(path, headers={**bearer(key), "If-None-Match": etags[0]})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] not in etags


async def test_movement_pages_by_key_and_cursor(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    closings = [(await create_closing(client, key, chart=chart_json(CHART))).id for _ in "ab"]
    voucher = "A/1 #2?x=%20"  # a key that needs URL-encoding, / included
    ledger = HEADER + "".join(
        f"2026-10-{day:02d},{voucher},1101,FAC,x,{day},0\n" for day in range(1, 8)
    )
    for closing in closings:
        assert (await upload(client, key, closing, ledger.encode())).status_code == 202
    await run_worker()
    first, other = (f"{API}/closings/{c}/incidences" for c in closings)
    want = expected(ledger)[f"VOUCHER_UNBALANCED:{voucher}"].lines
    drill = f"/{quote(f'VOUCHER_UNBALANCED:{voucher}', safe='')}/movements"
    lines, cursor, foreign = [], None, None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await client.get(first + drill, params=params, headers=bearer(key))
        assert page.status_code == 200, page.text
        lines += [m["line"] for m in page.json()["items"]]
        if (cursor := page.json()["next_cursor"]) is None:
            break
        foreign = cursor
    assert lines == want
    missing = await client.get(first + "/DOCUMENT_TYPE_MISSING:/movements", headers=bearer(key))
    assert assert_problem(missing, 404)
    unknown = base64.urlsafe_b64encode(orjson.dumps({"i": str(uuid.uuid4()), "a": 0})).decode()
    for bad in (foreign, "not-a-cursor", unknown.rstrip("=")):
        # a cursor of another closing, junk, and one naming an unknown iteration: a 4xx problem
        response = await client.get(other + drill, params={"cursor": bad}, headers=bearer(key))
        assert response.status_code in (404, 422), response.text
        assert_problem(response, response.status_code)
