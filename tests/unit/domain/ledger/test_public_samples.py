"""End to end on the public sample ledgers, checked against figures computed independently."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
from python_calamine import CalamineWorkbook

from app.domain.evaluation import Evaluation, evaluate
from app.domain.ledger.format import AmountMode, LedgerLayout, LedgerOptions
from app.domain.ledger.inspect import inspect_ledger
from app.domain.ledger.reader import iter_movement_batches, ledger_row_fetcher, narrow
from app.domain.reference import Account, ReferenceData
from tests.paths import PUBLIC_DATA

DATA = PUBLIC_DATA


def _evaluate(
    path: Path, options: LedgerOptions, reference: ReferenceData, refetch: bool
) -> tuple[LedgerLayout, Evaluation]:
    """Evaluate a file; texts come from re-reading it (refetch) or ride in the narrow frame."""
    layout = inspect_ledger(path, options)
    batches = iter_movement_batches(path, layout, batch_rows=10_000)
    frame = pl.concat(narrow(b, keep_text=not refetch) for b in batches)
    fetch = ledger_row_fetcher(path, layout) if refetch else None
    return layout, evaluate(frame, reference, layout.has_document_type, fetch)


def test_journal_entries_csv() -> None:
    path = DATA / "journal_entries.csv"
    with (DATA / "chart_of_accounts.csv").open(newline="") as fh:
        chart = {
            r["account"]: Account(r["account_name"], None, r["type"]) for r in csv.DictReader(fh)
        }
    reference = ReferenceData(accounts=chart, document_types={}, period="2025-01")
    options = LedgerOptions(column_map={"voucher": "entry_id", "account_code": "account"})
    layout, result = _evaluate(path, options, reference, refetch=True)

    with path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if any(v.strip() for v in r.values())]
    debit = sum(Decimal(r["debit"] or 0) for r in rows)
    credit = sum(Decimal(r["credit"] or 0) for r in rows)
    balance: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        balance[r["entry_id"]] += Decimal(r["debit"] or 0) - Decimal(r["credit"] or 0)
    months = Counter(r["date"][:7] for r in rows if r["date"][:7] != "2025-01")
    per_account = Counter(r["account"] for r in rows)

    stats = result.statistics
    assert layout.amount_mode is AmountMode.DEBIT_CREDIT
    assert stats.movements_total == len(rows) == 1796
    assert stats.movements_rejected == 0
    assert (stats.debit_total, stats.credit_total) == (debit, credit)
    assert stats.rules_skipped == ("DOCUMENT_TYPE_MISSING", "DOCUMENT_TYPE_UNKNOWN")
    found = {i.key: i for i in result.incidences}
    unbalanced = {k.split(":", 1)[1] for k in found if k.startswith("VOUCHER_UNBALANCED:")}
    assert unbalanced == {v for v, b in balance.items() if b != 0}
    out_of_period = {
        k.split(":", 1)[1]: i.movement_count
        for k, i in found.items()
        if i.type == "MOVEMENT_OUT_OF_PERIOD"
    }
    assert out_of_period == dict(months)
    english = {
        i.element.code: i.movement_count
        for i in result.incidences
        if i.type == "ACCOUNT_MISSING_ENGLISH_NAME"
    }
    assert english == {a: n for a, n in per_account.items() if a in chart}
    not_in_chart = {i.element.code for i in result.incidences if i.type == "ACCOUNT_NOT_IN_CHART"}
    assert not_in_chart == {a for a in per_account if a not in chart}


def test_je_samples_xlsx() -> None:
    path = DATA / "je_samples.xlsx"
    options = LedgerOptions(
        column_map={
            "voucher": "JENumber",
            "account_code": "GLAccountNumber",
            "date": "EffectiveDate",
            "amount": "Amount",
            "description": "JEDescription",
            "account_name": "GLAccountName",
        }
    )
    reference = ReferenceData(accounts={}, document_types={}, period="2015-01")
    layout, result = _evaluate(path, options, reference, refetch=False)

    sheet = (
        CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python(skip_empty_area=False)
    )
    header = sheet[0]
    amount, voucher, date = (
        header.index("Amount"),
        header.index("JENumber"),
        header.index("EffectiveDate"),
    )
    rows = [r for r in sheet[1:] if any(v != "" for v in r)]
    amounts = [Decimal(repr(r[amount])) for r in rows]
    balance: dict[str, Decimal] = defaultdict(Decimal)
    for r, a in zip(rows, amounts, strict=True):
        balance[str(r[voucher])] += a
    in_period = sum(
        1
        for r in rows
        if isinstance(r[date], dt.date) and (r[date].year, r[date].month) == (2015, 1)
    )

    stats = result.statistics
    # Debit/Credit columns are found by alias, but column_map names amount alone: signed mode.
    assert layout.amount_mode is AmountMode.SIGNED_AMOUNT
    assert stats.movements_total == len(rows) == 37905
    assert stats.movements_rejected == 0
    assert stats.debit_total == sum(a for a in amounts if a > 0)
    assert stats.credit_total == -sum(a for a in amounts if a < 0)
    unbalanced = {i.element.code for i in result.incidences if i.type == "VOUCHER_UNBALANCED"}
    assert unbalanced == {v for v, b in balance.items() if b != 0}
    out = sum(i.movement_count for i in result.incidences if i.type == "MOVEMENT_OUT_OF_PERIOD")
    assert out == len(rows) - in_period
    # Numeric account cells become codes without ".0"; text codes stay as they are.
    codes = {i.element.code for i in result.incidences if i.type == "ACCOUNT_NOT_IN_CHART"}
    assert "11845" in codes and "70300-FS" in codes
    assert not any(c.endswith(".0") for c in codes)
