"""End to end on the public sample ledgers, checked against figures computed independently."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

from app.domain.evaluation import Evaluation, evaluate
from app.domain.ledger.format import AmountMode, LedgerLayout, LedgerOptions
from app.domain.ledger.inspect import inspect_ledger
from app.domain.reference import Account, ReferenceData
from tests.paths import PUBLIC_DATA
from tests.unit.domain.helpers import narrow_frame, stored_fetcher
from tests.workbooks import JE_COLUMN_MAP, je_like_workbook

DATA = PUBLIC_DATA


def _evaluate(
    path: Path, options: LedgerOptions, reference: ReferenceData, folder: Path
) -> tuple[LedgerLayout, Evaluation]:
    """Evaluate a file as the worker does: texts fetched from the stored batches."""
    layout = inspect_ledger(path, options)
    frame = narrow_frame(path, layout, batch_rows=10_000)
    (folder / "batches").mkdir()
    fetch = stored_fetcher(path, layout, folder / "batches")
    return layout, evaluate(frame, reference, layout.has_document_type, fetch)


def test_journal_entries_csv(tmp_path: Path) -> None:
    path = DATA / "journal_entries.csv"
    with (DATA / "chart_of_accounts.csv").open(newline="") as fh:
        chart = {
            r["account"]: Account(r["account_name"], None, r["type"]) for r in csv.DictReader(fh)
        }
    reference = ReferenceData(accounts=chart, document_types={}, period="2025-01")
    options = LedgerOptions(column_map={"voucher": "entry_id", "account_code": "account"})
    layout, result = _evaluate(path, options, reference, tmp_path)

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


def test_je_like_workbook(tmp_path: Path) -> None:
    """A workbook with je_samples.xlsx's traits (tests/workbooks.py), checked against the
    movements it was built from."""
    ledger = je_like_workbook(tmp_path / "je.xlsx")
    options = LedgerOptions(column_map=JE_COLUMN_MAP)
    reference = ReferenceData(accounts={}, document_types={}, period="2015-06")
    layout, result = _evaluate(ledger.path, options, reference, tmp_path)

    movements = ledger.movements
    balance: dict[str, Decimal] = defaultdict(Decimal)
    for m in movements:
        balance[m.voucher] += m.debit - m.credit
    stats = result.statistics
    # Debit/Credit columns are found by alias, but column_map names amount alone: signed mode.
    assert layout.amount_mode is AmountMode.SIGNED_AMOUNT
    assert stats.movements_total == len(movements)
    assert stats.movements_rejected == 0
    assert stats.debit_total == sum(m.debit for m in movements)
    assert stats.credit_total == sum(m.credit for m in movements)
    assert not any(balance.values())
    assert not [i for i in result.incidences if i.type == "VOUCHER_UNBALANCED"]
    out = sum(i.movement_count for i in result.incidences if i.type == "MOVEMENT_OUT_OF_PERIOD")
    assert out == sum(1 for m in movements if (m.date.year, m.date.month) != (2015, 6))
    # Numeric account cells become codes without ".0", padded by their format; text codes stay.
    codes = {i.element.code for i in result.incidences if i.type == "ACCOUNT_NOT_IN_CHART"}
    assert codes == {m.account_code for m in movements}
    assert {"11845", "001234", "70300-FS"} <= codes
    assert not any(c.endswith(".0") for c in codes)
