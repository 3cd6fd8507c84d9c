"""Reprocessing triggers (SPEC §5): each kind re-runs the closing with the right trigger, a diff and
a snapshot computed here from the reference data as changed; first_seen_iteration runs; only the
closings whose ledger uses a touched code re-run; closed closings refuse every trigger."""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient

from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import (
    API,
    Account,
    Closing,
    Expected,
    Movement,
    assert_incidences,
    assert_problem,
    assert_statistics,
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
    "6101": Account("Gastos", "Expenses", "expenses"),
    "9000": Account("Sin uso", None, None),  # in the chart, in no ledger
}
DOCS = {"FAC": "Factura"}
HEADER = "fecha,comprobante,cuenta,tipo_doc,glosa,debe,haber\n"
L1 = HEADER + (
    "2026-10-01,V1,1101,FAC,venta,100.00,0\n"
    "2026-10-01,V1,4101,FAC,venta,0,100.00\n"
    "2026-10-02,V2,5101,BOL,costo,30.00,0\n"
    "2026-10-02,V2,1101,FAC,costo,0,20.00\n"
    "2026-10-03,V3,7101,nc,ajuste,10.00,0\n"
    "2026-10-03,V3,6101,,ajuste,0,10.00\n"
)
# V2 balanced (resolved), BOL used twice (changed), V5 out of period and unbalanced (new).
L2 = L1.replace("0,20.00", "0,30.00") + (
    "2026-10-04,V4,6101,BOL,gasto,5.00,0\n2026-10-04,V4,1101,FAC,gasto,0,5.00\n"
    "2026-09-30,V5,1101,FAC,viejo,1.00,0\n"
)


def movements(ledger: str) -> list[Movement]:
    return [
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


def expect(
    ledger: str, chart: Mapping[str, Account] = CHART, docs: Mapping[str, str] = DOCS
) -> dict[str, Expected]:
    return expected_incidences(movements(ledger), chart, PERIOD, doc_types=docs)


def assert_diff(diff: dict[str, Any], before: dict[str, Expected], after: dict[str, Expected]):
    def figures(e: Expected) -> tuple[int, Decimal, Decimal]:
        return e.count, e.debit, e.credit

    both = before.keys() & after.keys()
    changed = sorted(k for k in both if figures(before[k]) != figures(after[k]))
    assert sorted(diff["new"]) == sorted(after.keys() - before.keys())
    assert sorted(diff["resolved"]) == sorted(before.keys() - after.keys())
    assert [c["key"] for c in diff["changed"]] == changed
    for change in diff["changed"]:
        for side, source in (("before", before), ("after", after)):
            got = change[side]
            assert (
                got["movement_count"],
                Decimal(got["debit_total"]),
                Decimal(got["credit_total"]),
            ) == figures(source[change["key"]])
    assert diff["unchanged"] == len(both) - len(changed)


class History:
    """Runs a closing's iterations and checks each against the expected incidences, keeping
    first_seen_iteration as SPEC §4 defines it (the start of the key's unbroken run)."""

    def __init__(self, client: AsyncClient, key: str, closing: str, worker: Worker) -> None:
        self.client, self.key, self.closing, self.worker = client, key, closing, worker
        self.previous: dict[str, Expected] = {}
        self.first_seen: dict[str, int] = {}

    async def check(self, number: int, trigger: str, ledger: str, want: dict[str, Expected]):
        await self.worker()
        path = f"/closings/{self.closing}/iterations/{number}"
        iteration = await get_json(self.client, self.key, path)
        assert (iteration["status"], iteration["trigger"]) == ("succeeded", trigger), iteration
        assert_diff(iteration["diff"], self.previous, want)
        document = await get_json(self.client, self.key, f"/closings/{self.closing}/incidences")
        assert document["iteration"] == number
        assert_incidences(document, want)
        assert_statistics(document["statistics"], movements(ledger), want)
        self.first_seen = {k: self.first_seen.get(k, number) for k in want}
        got = {i["key"]: i["first_seen_iteration"] for i in document["incidences"]}
        assert got == self.first_seen
        self.previous = want
        return iteration


async def put(client: AsyncClient, key: str, client_id: str, what: str, body: list) -> list:
    response = await client.put(f"{API}/clients/{client_id}/{what}", json=body, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()["iterations"]


async def started(client: AsyncClient, key: str, worker: Worker) -> tuple[Closing, History]:
    """A closing with CHART, DOCS and ledger L1, its initial iteration run and checked."""
    docs = [{"code": c, "name": n} for c, n in DOCS.items()]
    created = await create_closing(client, key, chart=chart_json(CHART), doc_types=docs)
    history = History(client, key, created.id, worker)
    first = await upload(client, key, created.id, L1.encode())
    assert (first.json()["number"], first.json()["trigger"]) == (1, "initial")
    await history.check(1, "initial", L1, expect(L1))
    return created, history


CHANGES: dict[str, tuple[str, list[dict[str, Any]], dict[str, Account], dict[str, str]]] = {
    "document_types_updated": (
        "document-types",
        [{"code": " bol ", "name": "Boleta"}],
        CHART,
        {**DOCS, "BOL": "Boleta"},
    ),
    "classification_updated": (
        "accounts",
        [{"code": "5101", "name": "Costo", "classification": "cost_of_sales"}],
        {**CHART, "5101": Account("Costo", "Cost", "cost_of_sales")},
        DOCS,
    ),
    "english_names_updated": (
        "accounts",
        [{"code": "4101", "name": "Ventas", "name_en": "Sales"}],
        {**CHART, "4101": Account("Ventas", "Sales", "revenue")},
        DOCS,
    ),
    "accounts_updated": (  # a new account the ledger uses, and a rename
        "accounts",
        [{"code": "7101", "name": "Ajustes"}, {"code": "4101", "name": "Ventas Chile"}],
        {**CHART, "7101": Account("Ajustes"), "4101": Account("Ventas Chile", None, "revenue")},
        DOCS,
    ),
}


@pytest.mark.parametrize("trigger", ["ledger_replaced", "manual", *CHANGES])
async def test_each_trigger_reruns_with_its_diff_and_snapshot(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker, trigger: str
) -> None:
    key = await make_key("analyst", name="ana")
    created, history = await started(client, key, run_worker)
    ledger = L1
    if trigger == "ledger_replaced":
        ledger, want = L2, expect(L2)
        queued = (await upload(client, key, created.id, L2.encode())).json()
    elif trigger == "manual":
        want = expect(L1)
        response = await client.post(
            f"{API}/closings/{created.id}/reprocess", json={"notes": "FX"}, headers=bearer(key)
        )
        assert response.status_code == 202, response.text
        queued = response.json()
        assert (queued["notes"], queued["requested_by"]) == ("FX", "ana")
    else:
        what, body, chart, doc_types = CHANGES[trigger]
        want = expect(L1, chart, doc_types)
        (queued,) = await put(client, key, created.client_id, what, body)
    assert queued["number"] == 2 and queued["trigger"] == trigger
    assert (queued["status"], queued["coalesced_triggers"]) == ("queued", [])
    assert want != history.previous or trigger == "manual"  # the change shows in the result
    await history.check(2, trigger, ledger, want)


async def test_first_seen_survives_and_a_returning_incidence_starts_a_new_run(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    created, history = await started(client, key, run_worker)
    classified = {**CHART, "5101": Account("Costo", "Cost", "cost_of_sales")}
    body = [{"code": "5101", "name": "Costo", "classification": "cost_of_sales"}]
    assert len(await put(client, key, created.client_id, "accounts", body)) == 1
    await history.check(2, "classification_updated", L1, expect(L1, classified))
    assert "ACCOUNT_UNCLASSIFIED:5101" not in history.first_seen

    reprocess = f"{API}/closings/{created.id}/reprocess"
    assert (await client.post(reprocess, json={}, headers=bearer(key))).status_code == 202
    await history.check(3, "manual", L1, expect(L1, classified))

    body = [{"code": "5101", "name": "Costo", "classification": ""}]  # cleared again
    assert len(await put(client, key, created.client_id, "accounts", body)) == 1
    await history.check(4, "classification_updated", L1, expect(L1))
    assert history.first_seen["ACCOUNT_UNCLASSIFIED:5101"] == 4  # back: a new run
    assert history.first_seen["ACCOUNT_MISSING_ENGLISH_NAME:4101"] == 1  # stayed throughout
    assert set(history.first_seen.values()) == {1, 4}


async def test_only_open_closings_whose_ledger_uses_a_touched_code_rerun(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    tenant = f"open-only-{secrets.token_hex(4)}"
    key = await make_key("analyst", tenant=tenant)
    a, _ = await started(client, key, run_worker)
    ids = {"a": a.id}
    for name, period in (("b", "2026-11"), ("c", "2026-12"), ("d", "2027-01")):
        created = await client.post(
            f"{API}/clients/{a.client_id}/closings", json={"period": period}, headers=bearer(key)
        )
        ids[name] = created.json()["id"]
    no_doc_types = (
        b"fecha,comprobante,cuenta,debe,haber\n2026-11-02,W,1101,5,0\n2026-11-02,W,2101,0,5\n"
    )
    for name, ledger in (("b", no_doc_types), ("c", L1.encode())):
        assert (await upload(client, key, ids[name], ledger)).status_code == 202
    await run_worker()

    admin = await make_key("admin", tenant=tenant)

    async def set_c(status: str) -> None:
        patch = {"status": status, "force": True}  # its unbalanced voucher stays unreviewed
        response = await client.patch(
            f"{API}/closings/{ids['c']}", json=patch, headers=bearer(admin)
        )
        assert response.status_code == 200 and response.json()["status"] == status

    async def numbers() -> dict[str, list[tuple[int, str]]]:
        return {
            name: [
                (i["number"], i["trigger"])
                for i in (await get_json(client, key, f"/closings/{closing}/iterations"))["items"]
            ]
            for name, closing in ids.items()
        }

    await set_c("closed")
    before = await numbers()
    assert before == {n: [(1, "initial")] for n in "abc"} | {"d": []}
    unused = [
        ("accounts", [{"code": "9000", "name": "Sin uso", "classification": "other"}]),
        ("accounts", [{"code": "8000", "name": "Nueva"}]),  # a new account no ledger uses
        ("accounts", chart_json(CHART)[:2]),  # unchanged values: nothing changes
        ("document-types", [{"code": "ZZ", "name": "Otro"}]),
    ]
    for what, body in unused:
        assert await put(client, key, a.client_id, what, body) == []
    assert await numbers() == before

    (nc,) = await put(client, key, a.client_id, "document-types", [{"code": "NC", "name": "N"}])
    assert (nc["closing_id"], nc["number"]) == (ids["a"], 2)
    assert nc["trigger"] == "document_types_updated"
    body = [{"code": "2101", "name": "Proveedores", "name_en": "Payables"}]  # not in the chart yet
    (payables,) = await put(client, key, a.client_id, "accounts", body)
    assert (payables["closing_id"], payables["trigger"]) == (ids["b"], "accounts_updated")
    body = [{"code": "1101", "name": "Caja", "name_en": "Cash", "classification": "cash"}]
    both = await put(client, key, a.client_id, "accounts", body)  # merged into the queued ones
    assert sorted((i["id"], i["coalesced_triggers"][0]) for i in both) == sorted(
        (i["id"], "classification_updated") for i in (nc, payables)
    )

    reprocess = f"{API}/closings/{ids['c']}/reprocess"  # closed: every trigger is refused
    assert_problem(await client.post(reprocess, json={}, headers=bearer(key)), 409)
    assert_problem(await upload(client, key, ids["c"], L1.encode()), 409)
    await set_c("open")
    again = await client.post(reprocess, json={"notes": "reopened"}, headers=bearer(key))
    assert again.status_code == 202, again.text
    assert (again.json()["number"], again.json()["trigger"]) == (2, "manual")

    # A ledger not parsed yet has no known codes: any change re-runs it (the run may have read
    # the reference data already), merged into its queued initial iteration.
    d_ledger = no_doc_types.replace(b"2026-11", b"2027-01")
    assert (await upload(client, key, ids["d"], d_ledger)).status_code == 202
    body = [{"code": "9000", "name": "Sin uso", "classification": "misc"}]
    touched = await put(client, key, a.client_id, "accounts", body)
    assert [(i["closing_id"], i["number"], i["coalesced_triggers"]) for i in touched] == [
        (ids["d"], 1, ["classification_updated"])
    ]
    await run_worker()
    assert await numbers() == {
        "a": [(2, "document_types_updated"), (1, "initial")],
        "b": [(2, "accounts_updated"), (1, "initial")],
        "c": [(2, "manual"), (1, "initial")],
        "d": [(1, "initial")],
    }
    for closing in ids.values():
        items = (await get_json(client, key, f"/closings/{closing}/iterations"))["items"]
        assert {i["status"] for i in items} == {"succeeded"}


async def test_a_change_reprocesses_every_affected_closing_of_a_large_client(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    # More closings than jobs are queued at once (ENQUEUE_AT_ONCE): every one gets its job.
    key = await make_key("analyst", tenant=f"many-{secrets.token_hex(4)}")
    first, _ = await started(client, key, run_worker)
    ids = [first.id]
    for month in range(1, 11):
        created = await client.post(
            f"{API}/clients/{first.client_id}/closings",
            json={"period": f"2025-{month:02d}"},
            headers=bearer(key),
        )
        ids.append(created.json()["id"])
        assert (await upload(client, key, ids[-1], L1.encode())).status_code == 202
    await run_worker()
    body = [{"code": "1101", "name": "Caja", "name_en": "Cash", "classification": "cash"}]
    queued = await put(client, key, first.client_id, "accounts", body)
    assert sorted(i["closing_id"] for i in queued) == sorted(ids)
    await run_worker()
    for closing in ids:
        latest = (await get_json(client, key, f"/closings/{closing}/iterations"))["items"][0]
        assert (latest["trigger"], latest["status"]) == ("classification_updated", "succeeded")
