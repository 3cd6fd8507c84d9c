"""Reviews of incidences and the close gate (SPEC §10): acknowledged with a note, carried over
while the key persists, stale when its figures change, open again after it was resolved, shown
and counted on the snapshot, and required (or forced by an admin) before a month closes."""

from __future__ import annotations

import secrets
from typing import Any

from httpx import AsyncClient

from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import API, Closing, assert_problem, create_closing, get_json, upload

CHART = [{"code": "1101", "name": "Caja", "name_en": "Cash", "classification": "assets"}]
HEADER = "fecha,comprobante,cuenta,debe,haber\n"
UNBALANCED = "VOUCHER_UNBALANCED:V1"
NOT_IN_CHART = "ACCOUNT_NOT_IN_CHART:9999"


def _ledger(credit: str = "90.00", *, stray_account: bool = True, v1: bool = True) -> bytes:
    rows = []
    if v1:
        rows += ["2026-10-01,V1,1101,100.00,0", f"2026-10-01,V1,1101,0,{credit}"]
    if stray_account:
        rows += ["2026-10-02,V2,9999,5.00,0", "2026-10-02,V2,1101,0,5.00"]
    rows += ["2026-10-03,V3,1101,7.00,0", "2026-10-03,V3,1101,0,7.00"]
    return (HEADER + "\n".join(rows) + "\n").encode()


async def _setup(client: AsyncClient, make_key: KeyMaker) -> tuple[str, str, str, Closing]:
    tenant = f"reviews-{secrets.token_hex(4)}"
    analyst = await make_key("analyst", tenant=tenant, name="ana")
    admin = await make_key("admin", tenant=tenant, name="boss")
    viewer = await make_key("viewer", tenant=tenant)
    return analyst, admin, viewer, await create_closing(client, analyst, chart=CHART)


async def _processed(
    client: AsyncClient, key: str, closing: Closing, worker: Worker, ledger: bytes
) -> dict[str, Any]:
    assert (await upload(client, key, closing.id, ledger)).status_code == 202
    await worker()
    snapshot: dict[str, Any] = await get_json(client, key, f"/closings/{closing.id}/incidences")
    return snapshot


async def _review(
    client: AsyncClient, key: str, closing: Closing, incidence: str, status: str, note: str = ""
) -> Any:
    body = {"status": status, **({"note": note} if note else {})}
    url = f"{API}/closings/{closing.id}/reviews/{incidence}"
    return await client.put(url, json=body, headers=bearer(key))


def _by_key(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {incidence["key"]: incidence for incidence in snapshot["incidences"]}


async def test_an_acknowledgement_carries_over_three_iterations(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    analyst, _, viewer, closing = await _setup(client, make_key)
    first = await _processed(client, analyst, closing, run_worker, _ledger())
    assert _by_key(first)[UNBALANCED]["review"] == {
        "status": "open",
        "note": None,
        "by": None,
        "at": None,
        "stale": False,
    }
    put = await _review(client, analyst, closing, UNBALANCED, "acknowledged", "ERP rounding")
    assert put.status_code == 200, put.text
    assert (put.json()["by"], put.json()["iteration"], put.json()["movement_count"]) == (
        "ana",
        1,
        2,
    )
    for number in (2, 3):
        reprocess = f"{API}/closings/{closing.id}/reprocess"
        assert (await client.post(reprocess, json={}, headers=bearer(analyst))).status_code == 202
        await run_worker()
        snapshot = await get_json(client, viewer, f"/closings/{closing.id}/incidences")
        assert snapshot["iteration"] == number
        review = _by_key(snapshot)[UNBALANCED]["review"]
        assert (review["status"], review["note"], review["by"]) == (
            "acknowledged",
            "ERP rounding",
            "ana",
        )
        assert review["stale"] is False and review["at"] is not None
        assert _by_key(snapshot)[NOT_IN_CHART]["review"]["status"] == "open"
    listed = await get_json(client, viewer, f"/closings/{closing.id}/reviews")
    assert [(r["key"], r["status"]) for r in listed["items"]] == [(UNBALANCED, "acknowledged")]


async def test_an_acknowledgement_goes_stale_when_the_figures_change(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    analyst, _, _, closing = await _setup(client, make_key)
    await _processed(client, analyst, closing, run_worker, _ledger(credit="90.00"))
    assert (await _review(client, analyst, closing, UNBALANCED, "acknowledged")).status_code == 200
    changed = await _processed(client, analyst, closing, run_worker, _ledger(credit="80.00"))
    unbalanced = _by_key(changed)[UNBALANCED]
    assert unbalanced["credit_total"] == "80.00"
    assert (unbalanced["review"]["status"], unbalanced["review"]["stale"]) == ("acknowledged", True)
    assert changed["statistics"]["reviews"] == {"open": 1, "acknowledged": 1, "stale": 1}
    again = await _review(client, analyst, closing, UNBALANCED, "acknowledged", "checked again")
    assert again.status_code == 200 and again.json()["credit_total"] == "80.00"
    current = await get_json(client, analyst, f"/closings/{closing.id}/incidences")
    assert _by_key(current)[UNBALANCED]["review"]["stale"] is False


async def test_a_key_resolved_then_back_starts_open_again(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    analyst, _, _, closing = await _setup(client, make_key)
    await _processed(client, analyst, closing, run_worker, _ledger())
    assert (await _review(client, analyst, closing, UNBALANCED, "acknowledged")).status_code == 200
    resolved = await _processed(client, analyst, closing, run_worker, _ledger(v1=False))
    assert UNBALANCED not in _by_key(resolved)
    assert_problem(await _review(client, analyst, closing, UNBALANCED, "acknowledged"), 404)
    back = await _processed(client, analyst, closing, run_worker, _ledger())
    incidence = _by_key(back)[UNBALANCED]
    assert incidence["first_seen_iteration"] == 3
    assert (incidence["review"]["status"], incidence["review"]["by"]) == ("open", None)


async def test_the_review_filter_and_statistics(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    analyst, _, viewer, closing = await _setup(client, make_key)
    snapshot = await _processed(client, analyst, closing, run_worker, _ledger())
    total = len(snapshot["incidences"])
    assert snapshot["statistics"]["reviews"] == {"open": total, "acknowledged": 0, "stale": 0}
    assert (
        await _review(client, analyst, closing, NOT_IN_CHART, "acknowledged")
    ).status_code == 200
    path = f"/closings/{closing.id}/incidences"
    acknowledged = await get_json(client, viewer, path, review="acknowledged")
    assert [i["key"] for i in acknowledged["incidences"]] == [NOT_IN_CHART]
    assert acknowledged["page"]["total"] == 1
    still_open = await get_json(client, viewer, path, review="open")
    assert NOT_IN_CHART not in _by_key(still_open) and still_open["page"]["total"] == total - 1
    whole = await get_json(client, viewer, path)
    assert whole["statistics"]["reviews"] == {"open": total - 1, "acknowledged": 1, "stale": 0}
    assert_problem(
        await client.get(f"{API}{path}", params={"review": "x"}, headers=bearer(viewer)), 422
    )
    reopened = await _review(client, analyst, closing, NOT_IN_CHART, "open", "look again")
    assert reopened.status_code == 200
    whole = await get_json(client, viewer, path)
    assert whole["statistics"]["reviews"]["acknowledged"] == 0
    assert _by_key(whole)[NOT_IN_CHART]["review"]["note"] == "look again"


async def test_closing_needs_every_error_acknowledged_or_an_admins_force(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    analyst, admin, _, closing = await _setup(client, make_key)
    await _processed(client, analyst, closing, run_worker, _ledger())
    url = f"{API}/closings/{closing.id}"
    refused = assert_problem(
        await client.patch(url, json={"status": "closed"}, headers=bearer(analyst)), 409
    )
    assert refused["type"].endswith("close-blocked")
    assert sorted(refused["unreviewed_keys"]) == sorted([UNBALANCED, NOT_IN_CHART])
    assert refused["unreviewed_count"] == 2
    forced_by_analyst = {"status": "closed", "force": True}
    assert_problem(await client.patch(url, json=forced_by_analyst, headers=bearer(analyst)), 403)

    await _review(client, analyst, closing, UNBALANCED, "acknowledged")
    still = await client.patch(url, json={"status": "closed"}, headers=bearer(analyst))
    assert assert_problem(still, 409)["unreviewed_keys"] == [NOT_IN_CHART]
    forced = await client.patch(url, json=forced_by_analyst, headers=bearer(admin))
    assert forced.status_code == 200 and forced.json()["status"] == "closed"
    events = (await get_json(client, admin, "/audit", closing_id=closing.id))["items"]
    force = next(e for e in events if e["action"] == "closing.force_closed")
    assert force["actor"]["name"] == "boss" and force["details"]["unreviewed_keys"] == [
        NOT_IN_CHART
    ]
    assert [e["action"] for e in events if e["action"].startswith("review.")] == [
        "review.acknowledged"
    ]
    # Closed: reviews are frozen with it.
    assert_problem(await _review(client, analyst, closing, NOT_IN_CHART, "acknowledged"), 409)
    reopened = await client.patch(url, json={"status": "open"}, headers=bearer(analyst))
    assert reopened.status_code == 200
    await _review(client, analyst, closing, NOT_IN_CHART, "acknowledged")
    closed = await client.patch(url, json={"status": "closed"}, headers=bearer(analyst))
    assert closed.status_code == 200, closed.text


async def test_roles_and_tenants(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    analyst, _, viewer, closing = await _setup(client, make_key)
    await _processed(client, analyst, closing, run_worker, _ledger())
    assert_problem(await _review(client, viewer, closing, UNBALANCED, "acknowledged"), 403)
    stranger = await make_key("admin")
    assert_problem(await _review(client, stranger, closing, UNBALANCED, "acknowledged"), 404)
    listing = await client.get(f"{API}/closings/{closing.id}/reviews", headers=bearer(stranger))
    assert_problem(listing, 404)
    assert_problem(await _review(client, analyst, closing, "NO_SUCH:KEY", "acknowledged"), 404)
    bad = await client.put(
        f"{API}/closings/{closing.id}/reviews/{UNBALANCED}",
        json={"status": "done"},
        headers=bearer(analyst),
    )
    assert_problem(bad, 422)


async def test_no_stale_read_after_a_review(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    analyst, _, viewer, closing = await _setup(client, make_key)
    await _processed(client, analyst, closing, run_worker, _ledger())
    path = f"{API}/closings/{closing.id}/incidences"
    views = ({}, {"severity": "error"}, {"review": "acknowledged"})
    before = {}
    for params in views:  # warm: the near cache and Redis hold every view
        for _ in range(2):
            response = await client.get(path, params=params, headers=bearer(viewer))
            assert response.status_code == 200
        before[tuple(params)] = response.headers["ETag"]
    assert (await _review(client, analyst, closing, UNBALANCED, "acknowledged")).status_code == 200
    for params in views:
        after = await client.get(path, params=params, headers=bearer(viewer))
        assert after.headers["ETag"] != before[tuple(params)], params
        statuses = {i["key"]: i["review"]["status"] for i in after.json()["incidences"]}
        if UNBALANCED in statuses:
            assert statuses[UNBALANCED] == "acknowledged"
        stale = await client.get(
            path, params=params, headers={**bearer(viewer), "If-None-Match": before[tuple(params)]}
        )
        assert stale.status_code == 200  # the old ETag no longer matches
