"""XLSX ledgers: numeric cells as codes, native dates, float amounts, blank rows (SPEC §3)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from app.domain.errors import LedgerFormatError
from app.domain.ledger.cells import cell_text, float_text
from app.domain.ledger.format import AmountMode, LedgerOptions
from tests.unit.domain.helpers import read
from tests.unit.domain.xlsx_writer import write_xlsx

D = Decimal
HEADER = ["Cuenta", "Fecha", "Comprobante", "Debe", "Haber", "Tipo_Doc", "Folio", "Nombre_Cuenta"]


def test_numeric_codes_dates_and_amounts(tmp_path: Path) -> None:
    rows = [
        HEADER,
        [110105, dt.date(2026, 10, 1), 123, 1500.25, None, "fac", 7, "Banco"],
        ["0012", dt.datetime(2026, 10, 2, 13, 30), "A-1", None, 0.1 + 0.2, 33.0, 12.5, None],
        None,  # an absent row: blank, still counts
        ["", "", "", "", "", "", "", ""],  # empty strings: blank
        [210101, "31/10/2026", 124.0, "1.234,5", "", None, None, "Prov"],
        [210101, "31/02/2026", 125, 10, None, None, None, None],
    ]
    path = write_xlsx(tmp_path / "l.xlsx", rows)
    layout, frame = read(path, LedgerOptions(decimal_separator=","))
    assert layout.kind == "xlsx"
    assert layout.encoding is None and layout.delimiter is None
    assert frame["line"].to_list() == [2, 3, 6, 7]
    assert frame["account_code"].to_list() == ["110105", "0012", "210101", "210101"]
    assert frame["voucher"].to_list() == ["123", "A-1", "124", "125"]
    assert frame["date"].to_list() == [
        dt.date(2026, 10, 1),
        dt.date(2026, 10, 2),
        dt.date(2026, 10, 31),
        None,
    ]
    assert frame["debit"].to_list() == [D("1500.25"), D(0), D("1234.5"), D(10)]
    # 0.1 + 0.2 is stored as 0.30000000000000004: its repr, exactly, never float arithmetic.
    assert frame["credit"].to_list() == [D(0), D("0.30000000000000004"), D(0), D(0)]
    assert frame["document_type"].to_list() == ["fac", "33", None, None]
    assert frame["document_number"].to_list() == ["7", "12.5", None, None]
    assert frame["invalid_field"].to_list() == [None, None, None, "date"]


def test_signed_amount_and_column_map(tmp_path: Path) -> None:
    rows = [
        ["JENumber", "GLAccountNumber", "EffectiveDate", "Amount"],
        ["20151", 11845.0, dt.date(2014, 7, 2), 10.19],
        ["20151", 43440.0, dt.date(2014, 7, 2), -10.19],
    ]
    path = write_xlsx(tmp_path / "l.xlsx", rows)
    options = LedgerOptions(
        column_map={
            "voucher": "JENumber",
            "account_code": "GLAccountNumber",
            "date": "EffectiveDate",
        }
    )
    layout, frame = read(path, options)
    assert layout.amount_mode is AmountMode.SIGNED_AMOUNT
    assert frame["account_code"].to_list() == ["11845", "43440"]
    assert frame["debit"].to_list() == [D("10.19"), D(0)]
    assert frame["credit"].to_list() == [D(0), D("10.19")]


def test_header_must_be_row_1(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "l.xlsx", [None, HEADER, [1, dt.date(2026, 10, 1), 1, 5, None]])
    with pytest.raises(LedgerFormatError):
        read(path)


def test_batches(tmp_path: Path) -> None:
    rows = [HEADER] + [[i, dt.date(2026, 10, 1), 1, 5, None] for i in range(7)]
    _, frame = read(write_xlsx(tmp_path / "l.xlsx", rows), batch_rows=3)
    assert frame["line"].to_list() == list(range(2, 9))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (110105.0, "110105"),
        (12.5, "12.5"),
        (1e16, "10000000000000000"),
        (1e-05, "0.00001"),
        (-0.5, "-0.5"),
        (1548.8267162999998, "1548.8267162999998"),
    ],
)
def test_float_text(value: float, expected: str) -> None:
    assert float_text(value) == expected


def test_cell_text() -> None:
    assert cell_text(None) is None
    assert cell_text("") is None
    assert cell_text(True) == "TRUE"
    assert cell_text(7) == "7"
    assert cell_text(dt.date(2026, 1, 2)) == "2026-01-02"
    assert cell_text(dt.datetime(2026, 1, 2, 3, 4)) == "2026-01-02 03:04:00"
