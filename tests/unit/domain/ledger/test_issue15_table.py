"""Issue #15's table, one test per row: ledgers as ERPs and spreadsheets really write them, read
the way an accountant reads them (SPEC §3). Every expectation is worked out by hand here."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from app.domain.evaluation import evaluate
from app.domain.ledger.format import LedgerOptions
from app.domain.ledger.inspect import inspect_ledger
from app.domain.ledger.reader import ReadReport, iter_movement_batches, parse_record
from app.domain.reference import Account, ReferenceData
from tests.unit.domain.helpers import REFERENCE, by_key, narrow_frame, parse_text, run, write
from tests.workbooks import JE_COLUMN_MAP, JE_PERIOD, Formatted, je_like_workbook, write_xlsx

D = Decimal
HEAD = "cuenta,fecha,comprobante,debe,haber,glosa"


def keys(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {i.key for i in result.incidences}


def test_two_inch_marks_in_unquoted_descriptions(tmp_path: Path) -> None:
    """Before: the iteration failed ("CSV malformed: expected 4 rows, actual 6 rows")."""
    rows = [
        '110105,2026-10-01,1,100,,Tubo 5" PVC',
        "210101,2026-10-01,1,,100,Proveedor",
        '110105,2026-10-02,2,40,,Codo 3" PVC',
        "210101,2026-10-02,2,,40,Proveedor",
    ]
    result = run(tmp_path, rows, header=HEAD)
    assert result.statistics.movements_total == 4
    assert result.statistics.movements_rejected == 0
    assert keys(result) == set()
    frame = parse_text(tmp_path, HEAD + "\n" + "\n".join(rows) + "\n")
    descriptions = ['Tubo 5" PVC', "Proveedor", 'Codo 3" PVC', "Proveedor"]
    assert frame["description"].to_list() == descriptions
    assert frame["line"].to_list() == [2, 3, 4, 5]


def test_one_inch_mark_in_an_unquoted_description(tmp_path: Path) -> None:
    """Before: the whole upload was refused with 422 (odd number of quotes)."""
    text = HEAD + '\n110105,2026-10-01,1,100,,Tubo 5" PVC\n210101,2026-10-01,1,,100,x\n'
    layout = inspect_ledger(write(tmp_path, text))
    assert layout.delimiter == ","
    frame = parse_text(tmp_path, text)
    assert frame["description"].to_list() == ['Tubo 5" PVC', "x"]
    assert frame["invalid_field"].to_list() == [None, None]


def test_cp1252_header_with_accents_and_punctuation(tmp_path: Path) -> None:
    """Before: 422 missing columns."""
    text = "Código Cuenta;Fecha;Nº Comprobante;Tipo Doc;Debe;Haber\n110105;01/10/2026;7;FAC;5;\n"
    path = write(tmp_path, text, encoding="cp1252")
    layout = inspect_ledger(path)
    assert layout.encoding == "cp1252"
    assert {c.field: c.header for c in layout.columns} == {
        "account_code": "Código Cuenta",
        "date": "Fecha",
        "voucher": "Nº Comprobante",
        "document_type": "Tipo Doc",
        "debit": "Debe",
        "credit": "Haber",
    }


def test_dates_with_a_time(tmp_path: Path) -> None:
    """Before: every row ROW_INVALID:date."""
    cells = ["2026-10-01 00:00:00", "01/10/2026 0:00", "2026-10-01T00:00:00", "1-10-2026 23:59"]
    text = HEAD + "\n" + "".join(f"110105,{c},1,5,,\n" for c in cells)
    frame = parse_text(tmp_path, text)
    assert frame["date"].to_list() == [dt.date(2026, 10, 1)] * 4
    assert frame["invalid_field"].to_list() == [None] * 4


def test_signed_amounts_in_parentheses_and_with_a_trailing_minus(tmp_path: Path) -> None:
    """Before: ROW_INVALID:amount and a false VOUCHER_UNBALANCED."""
    header = "cuenta,fecha,comprobante,monto"
    rows = [
        "110105,2026-10-01,1,100",
        '210101,2026-10-01,1,"(100)"',
        "110105,2026-10-01,2,50",
        "210101,2026-10-01,2,50-",
    ]
    result = run(tmp_path, rows, header=header)
    assert result.statistics.movements_rejected == 0
    assert not any(k.startswith(("VOUCHER_UNBALANCED", "ROW_INVALID")) for k in keys(result))
    frame = parse_text(tmp_path, header + "\n" + "\n".join(rows) + "\n")
    assert frame["credit"].to_list() == [D(0), D(100), D(0), D(50)]


def test_thousands_dots_without_a_decimal_separator_given(tmp_path: Path) -> None:
    """Before: ROW_INVALID on debit and credit. `1.234.567` can only mean a decimal comma."""
    rows = "110105,2026-10-01,1,1.234.567,,\n210101,2026-10-01,1,,1.234.567,\n"
    path = write(tmp_path, HEAD + "\n" + rows)
    layout = inspect_ledger(path)
    report = ReadReport()
    frames = list(iter_movement_batches(path, layout, report=report))
    assert frames[0]["debit"].to_list() == [D(1234567), D(0)]
    assert frames[0]["credit"].to_list() == [D(0), D(1234567)]
    record = parse_record(layout, report)
    assert (record["decimal_separator"], record["decimal_separator_detected"]) == (",", True)
    assert (record["rows_read"], record["blank_rows_skipped"]) == (2, 0)


def test_a_row_with_one_field_too_many(tmp_path: Path) -> None:
    """Before: silently cut to the header's width, with a false AMOUNT_INVALID and
    VOUCHER_UNBALANCED. Here the description's comma shifted the amounts one column right."""
    rows = [
        "110105,2026-10-01,1,100,,Venta",
        "210101,2026-10-01,1,,Pérez, Juan,100",  # 7 fields: "Pérez" lands in haber
    ]
    result = by_key(run(tmp_path, rows, header=HEAD))
    # No AMOUNT_INVALID from shifted values. The rejected row takes no part in other rules, so
    # its voucher's one valid movement (debit 100) is unbalanced, as SPEC §4 counts it.
    assert set(result) == {"ROW_INVALID:fields", "VOUCHER_UNBALANCED:1"}
    assert result["VOUCHER_UNBALANCED:1"].debit_total == D(100)
    rejected = result["ROW_INVALID:fields"]
    assert (rejected.element.kind, rejected.element.code) == ("column", "fields")
    assert rejected.sample_lines == (3,)
    assert "the row has 7 fields, the header 6" in rejected.message


def test_a_document_type_longer_than_100_characters(tmp_path: Path) -> None:
    """Before: the row was rejected (ROW_INVALID) and its voucher reported unbalanced. An
    optional field never rejects a row: it is just an unknown document type."""
    long = "X" * 150
    header = "cuenta,fecha,comprobante,debe,haber,tipo_doc"
    rows = [f"110105,2026-10-01,1,100,,{long}", "210101,2026-10-01,1,,100,FAC"]
    result = by_key(run(tmp_path, rows, header=header))
    unknown = [k for k in result if k.startswith("DOCUMENT_TYPE_UNKNOWN:")]
    assert len(unknown) == 1
    code = unknown[0].split(":", 1)[1]
    assert code.startswith("X" * 88 + "…#") and len(code) == 100
    assert result[unknown[0]].sample_lines == (2,)
    assert not any(k.startswith(("ROW_INVALID", "VOUCHER_UNBALANCED")) for k in result)


def test_a_je_samples_like_workbook_balances_at_15_digits(tmp_path: Path) -> None:
    """Before: 3 VOUCHER_UNBALANCED and totals like 1221785.702500000001, from cells such as
    11518.282500000001 (binary noise of 11518.2825)."""
    ledger = je_like_workbook(tmp_path / "je.xlsx", vouchers=120)
    layout = inspect_ledger(ledger.path, LedgerOptions(column_map=JE_COLUMN_MAP))
    reference = ReferenceData(accounts=dict(_chart(ledger)), document_types={}, period=JE_PERIOD)
    result = evaluate(narrow_frame(ledger.path, layout, keep_text=True), reference, False)
    assert not any(k.startswith("VOUCHER_UNBALANCED") for k in keys(result))
    assert result.statistics.debit_total == sum(m.debit for m in ledger.movements)
    assert result.statistics.credit_total == sum(m.credit for m in ledger.movements)
    assert result.statistics.debit_total == result.statistics.credit_total
    assert result.statistics.movements_total == len(ledger.movements)


def _chart(ledger) -> dict[str, Account]:  # type: ignore[no-untyped-def]
    return {code: Account(a.name, a.name_en, a.classification) for code, a in ledger.chart.items()}


def test_a_numeric_account_cell_in_a_zero_padded_format(tmp_path: Path) -> None:
    """Before: ACCOUNT_NOT_IN_CHART:1234. The cell shows 001234, the chart's code."""
    rows = [
        ["cuenta", "fecha", "comprobante", "debe", "haber"],
        [Formatted(1234, "000000"), dt.date(2026, 10, 1), 1, 10, None],
        [Formatted(1234, "000000"), dt.date(2026, 10, 1), 1, None, 10],
    ]
    path = write_xlsx(tmp_path / "l.xlsx", rows)
    layout = inspect_ledger(path)
    accounts = {"001234": Account("Caja", "Cash", "current_assets")}
    reference = ReferenceData(accounts=accounts, document_types={}, period="2026-10")
    result = evaluate(narrow_frame(path, layout, keep_text=True), reference, False)
    assert keys(result) == set()
    assert REFERENCE.period == "2026-10"
