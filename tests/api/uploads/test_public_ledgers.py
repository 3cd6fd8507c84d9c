"""Both real public ledgers, end to end over HTTP with `column_map` and a real worker.

Every expected figure is computed here from the file itself (csv + Decimal), or for the
workbook from what it was built from, and the reference rules of tests/helpers.py — never from
service output.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections import Counter
from decimal import Decimal
from pathlib import Path

import orjson
from httpx import AsyncClient

from tests.conftest import KeyMaker, Worker, bearer
from tests.helpers import (
    API,
    DOCUMENT_TYPE_RULES,
    Account,
    Expected,
    Movement,
    assert_incidences,
    assert_statistics,
    chart_json,
    create_closing,
    expected_incidences,
    get_json,
    upload,
)
from tests.paths import PUBLIC_DATA
from tests.workbooks import JE_COLUMN_MAP, JE_PERIOD, je_like_workbook

JOURNAL = PUBLIC_DATA / "journal_entries.csv"
CHART = PUBLIC_DATA / "chart_of_accounts.csv"
CSV_PERIOD = "2025-03"
# Accounts left out of the uploaded chart, so ACCOUNT_NOT_IN_CHART has real content.
CSV_LEFT_OUT = ("4900", "6600")


def _text(value: str) -> str | None:
    return value.strip() or None


def journal_movements(path: Path) -> list[Movement]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        records = csv.reader(fh)
        header = [h.strip().lower() for h in next(records)]
        at = {name: header.index(name) for name in header}
        movements = []
        for line, row in enumerate(records, start=2):
            if not any(cell.strip() for cell in row):
                continue
            movements.append(
                Movement(
                    line=line,
                    account_code=row[at["account"]].strip(),
                    date=dt.date.fromisoformat(row[at["date"]].strip()),
                    voucher=row[at["entry_id"]].strip(),
                    debit=Decimal(row[at["debit"]].strip() or "0"),
                    credit=Decimal(row[at["credit"]].strip() or "0"),
                    description=_text(row[at["description"]]),
                    account_name=_text(row[at["account_name"]]),
                )
            )
    return movements


async def process(
    client: AsyncClient, key: str, closing_id: str, path: Path, column_map: dict, worker: Worker
) -> dict:
    response = await upload(
        client,
        key,
        closing_id,
        await asyncio.to_thread(path.read_bytes),
        path.name,
        column_map=orjson.dumps(column_map).decode(),
    )
    assert response.status_code == 202, response.text
    await worker()
    iteration = await get_json(client, key, response.headers["Location"].removeprefix(API))
    assert iteration["status"] == "succeeded", iteration
    document: dict = await get_json(client, key, f"/closings/{closing_id}/incidences")
    assert document["content_hash"] == iteration["summary"]["content_hash"]
    return document


async def drill(client: AsyncClient, key: str, closing_id: str, incidence: str) -> list[dict]:
    """Every movement behind an incidence, following next_cursor (limit 100) until null."""
    items: list[dict] = []
    cursor = None
    for _ in range(1000):
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = await get_json(
            client, key, f"/closings/{closing_id}/incidences/{incidence}/movements", **params
        )
        assert len(page["items"]) <= 100
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def assert_drilled(items: list[dict], want: Expected, movements: dict[int, Movement]) -> None:
    assert [item["line"] for item in items] == want.lines
    for item in items:
        movement = movements[item["line"]]
        assert item["account_code"] == movement.account_code
        assert item["voucher"] == movement.voucher
        assert Decimal(item["debit"]) == movement.debit
        assert Decimal(item["credit"]) == movement.credit


def by_type(expected: dict[str, Expected], kind: str) -> dict[str, Expected]:
    return {k.split(":", 1)[1]: e for k, e in expected.items() if e.type == kind}


async def test_journal_entries_csv(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    closing = await create_closing(client, key, period=CSV_PERIOD, name="FY2025 company")
    lines = CHART.read_text(encoding="utf-8-sig").splitlines()
    kept = [lines[0], *(row for row in lines[1:] if row.split(",")[0] not in CSV_LEFT_OUT)]
    put = await client.put(
        f"{API}/clients/{closing.client_id}/accounts",
        content="\n".join(kept).encode(),
        params={"column_map": '{"classification": "type"}'},
        headers={**bearer(key), "Content-Type": "text/csv"},
    )
    assert put.status_code == 200, put.text
    assert put.json()["created"] == len(kept) - 1
    chart = {
        row["account"].strip(): Account(row["account_name"].strip(), None, row["type"].strip())
        for row in csv.DictReader(io.StringIO("\n".join(kept)))
    }

    document = await process(
        client,
        key,
        closing.id,
        JOURNAL,
        {"voucher": "entry_id", "account_code": "account"},
        run_worker,
    )

    movements = journal_movements(JOURNAL)
    expected = expected_incidences(movements, chart, CSV_PERIOD)
    assert_incidences(document, expected)
    assert_statistics(document["statistics"], movements, expected, skipped=DOCUMENT_TYPE_RULES)
    # The figures the brief names, spelled out (all recomputed from the file above).
    not_in_chart = by_type(expected, "ACCOUNT_NOT_IN_CHART")
    assert set(not_in_chart) == {m.account_code for m in movements} & set(CSV_LEFT_OUT)
    months = Counter(
        m.date.strftime("%Y-%m") for m in movements if m.date.strftime("%Y-%m") != CSV_PERIOD
    )
    out_of_period = by_type(expected, "MOVEMENT_OUT_OF_PERIOD")
    assert {month: e.count for month, e in out_of_period.items()} == months
    assert len(months) == 11
    got = {i["key"]: i for i in document["incidences"]}
    for code, want in not_in_chart.items():
        assert got[f"ACCOUNT_NOT_IN_CHART:{code}"]["movement_count"] == want.count > 0
        # Not in the chart: the name comes from the file's first movement of the account.
        first = min((m for m in movements if m.account_code == code), key=lambda m: m.line)
        assert got[f"ACCOUNT_NOT_IN_CHART:{code}"]["element"]["name"] == first.account_name
    assert not by_type(expected, "VOUCHER_UNBALANCED")
    assert not by_type(expected, "DUPLICATE_MOVEMENT")

    iteration = (await get_json(client, key, f"/closings/{closing.id}/iterations"))["items"][0]
    assert iteration["parse"] == {
        "kind": "csv",
        "encoding": "utf-8",
        "delimiter": ",",
        "decimal_separator": ".",  # 21881.02: the file shows it
        "decimal_separator_detected": True,
        "headers": {
            "account_code": "account",
            "date": "date",
            "voucher": "entry_id",
            "debit": "debit",
            "credit": "credit",
            "description": "description",
            "account_name": "account_name",
        },
        "rows_read": 1796,
        "blank_rows_skipped": 0,
    }
    drilled = await drill(client, key, closing.id, "MOVEMENT_OUT_OF_PERIOD:2025-01")
    assert len(drilled) == months["2025-01"] > 100
    assert_drilled(drilled, out_of_period["2025-01"], {m.line: m for m in movements})


async def test_je_like_workbook(
    client: AsyncClient, make_key: KeyMaker, run_worker: Worker, tmp_path: Path
) -> None:
    """A workbook with je_samples.xlsx's traits (tests/workbooks.py: the public file carries no
    licence), read with spreadsheet semantics: amounts at 15 significant digits (its float
    noise balances), account cells padded by their number format, date cells with a time."""
    ledger = je_like_workbook(tmp_path / "je_samples.xlsx")
    movements = ledger.movements
    # Chart: every numeric account; the text code stays out (ACCOUNT_NOT_IN_CHART), and Cash
    # lacks an English name.
    chart = {
        code: Account(a.name, None if a.classification == "Cash" else a.name_en, a.classification)
        for code, a in ledger.chart.items()
    }
    key = await make_key("analyst")
    closing = await create_closing(
        client, key, period=JE_PERIOD, name="Hotel", chart=chart_json(chart)
    )
    document = await process(client, key, closing.id, ledger.path, JE_COLUMN_MAP, run_worker)

    expected = expected_incidences(movements, chart, JE_PERIOD)
    assert_incidences(document, expected)
    assert_statistics(document["statistics"], movements, expected, skipped=DOCUMENT_TYPE_RULES)
    assert set(by_type(expected, "ACCOUNT_NOT_IN_CHART")) == {"70300-FS"}
    assert "001234" in {m.account_code for m in movements}  # shown padded: in the chart
    months = Counter(m.date.strftime("%Y-%m") for m in movements)
    del months[JE_PERIOD]
    out_of_period = by_type(expected, "MOVEMENT_OUT_OF_PERIOD")
    assert {month: e.count for month, e in out_of_period.items()} == months
    # Float noise (11518.282500000001 for 11518.2825) balances at 15 significant digits.
    assert not by_type(expected, "VOUCHER_UNBALANCED")
    assert document["statistics"]["debit_total"] == document["statistics"]["credit_total"]
    assert by_type(expected, "ACCOUNT_MISSING_ENGLISH_NAME")

    iteration = (await get_json(client, key, f"/closings/{closing.id}/iterations"))["items"][0]
    assert iteration["parse"] == {
        "kind": "xlsx",
        "encoding": None,
        "delimiter": None,
        "decimal_separator": ".",
        "decimal_separator_detected": True,
        "headers": {
            "account_code": "GLAccountNumber",
            "date": "EffectiveDate",
            "voucher": "JENumber",
            "amount": "Amount",
            "description": "JEDescription",
            "account_name": "GLAccountName",
        },
        "rows_read": movements[-1].line - 1,
        "blank_rows_skipped": movements[-1].line - 1 - len(movements),
    }
    drilled = await drill(client, key, closing.id, "MOVEMENT_OUT_OF_PERIOD:2015-05")
    assert len(drilled) == months["2015-05"] > 100
    assert_drilled(drilled, out_of_period["2015-05"], {m.line: m for m in movements})
