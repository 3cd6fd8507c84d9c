"""Parsing CSV ledgers into typed movements: lines, dates, amounts, text, rejections (SPEC §3)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from app.domain.ledger.format import LedgerOptions
from app.domain.ledger.inspect import inspect_ledger
from app.domain.ledger.parse import AMOUNT_DTYPE, MOVEMENT_SCHEMA
from app.domain.ledger.reader import ReadReport, iter_movement_batches, parse_record
from tests.unit.domain.helpers import parse_text, read, write

D = Decimal
HEAD = "cuenta,fecha,comprobante,debe,haber\n"


def amounts(tmp_path: Path, cells: list[str], separator: str = ".") -> list[Decimal | None]:
    """Parse each cell as the debit of its own row."""
    delimiter = ";"
    text = "cuenta;fecha;comprobante;debe;haber\n" + "".join(
        f"1;2026-10-01;1;{c};\n" for c in cells
    )
    frame = parse_text(tmp_path, text, LedgerOptions(decimal_separator=separator))
    assert delimiter in text
    return frame["debit"].to_list()


def test_schema_is_fixed(tmp_path: Path) -> None:
    frame = parse_text(tmp_path, HEAD + "1,2026-10-01,1,5,\n")
    assert frame.schema == MOVEMENT_SCHEMA
    assert frame["debit"].dtype == AMOUNT_DTYPE


class TestLines:
    def test_header_is_line_1_and_blank_rows_count(self, tmp_path: Path) -> None:
        text = HEAD + "1,2026-10-01,1,5,\n\n,,,,\n  , ,\n2,2026-10-01,1,,5\n"
        frame = parse_text(tmp_path, text)
        # line 2 data, 3 empty line, 4 ",,,,", 5 whitespace cells, 6 data
        assert frame["line"].to_list() == [2, 6]
        assert frame["account_code"].to_list() == ["1", "2"]

    def test_quoted_newlines_count_as_one_record(self, tmp_path: Path) -> None:
        text = HEAD.replace("haber", "haber,glosa") + (
            '1,2026-10-01,1,5,,"two\nlines, and a comma"\n2,2026-10-01,1,,5,"say ""hi"""\n'
        )
        frame = parse_text(tmp_path, text)
        assert frame["line"].to_list() == [2, 3]
        assert frame["description"].to_list() == ["two\nlines, and a comma", 'say "hi"']

    def test_unmapped_column_makes_a_row_non_blank(self, tmp_path: Path) -> None:
        text = HEAD.replace("haber", "haber,notas") + ",,,,,Total\n"
        frame = parse_text(tmp_path, text)
        assert frame["line"].to_list() == [2]
        assert frame["invalid_field"].to_list() == ["account_code"]

    def test_crlf(self, tmp_path: Path) -> None:
        text = (HEAD + "1,2026-10-01,1,5,\n\n2,2026-10-01,1,,5\n").replace("\n", "\r\n")
        frame = parse_text(tmp_path, text)
        assert frame["line"].to_list() == [2, 4]
        assert frame["credit"].to_list() == [D(0), D(5)]

    def test_short_and_long_rows(self, tmp_path: Path) -> None:
        text = HEAD + "1,2026-10-01,1,5\n2,2026-10-01,1,,5,extra\n3,2026-10-01,1,,5,\n"
        frame = parse_text(tmp_path, text)
        # Missing trailing fields are empty; a field past the header's width is refused, even
        # an empty one (a trailing delimiter): SPEC §3 never cuts a row.
        assert frame["credit"].to_list() == [D(0), D(5), D(5)]
        assert frame["invalid_field"].to_list() == [None, "fields", "fields"]
        assert frame["invalid_reason"][1] == "the row has 6 fields, the header 5"
        assert frame["invalid_reason"][2] == "the row has 6 fields, the header 5"


class TestDates:
    @pytest.mark.parametrize(
        ("cell", "expected"),
        [
            ("2026-10-31", dt.date(2026, 10, 31)),
            ("31/10/2026", dt.date(2026, 10, 31)),
            ("31-10-2026", dt.date(2026, 10, 31)),
            ("1/2/2026", dt.date(2026, 2, 1)),
            (" 05/10/2026 ", dt.date(2026, 10, 5)),
            ("29/02/2024", dt.date(2024, 2, 29)),
        ],
    )
    def test_accepted(self, tmp_path: Path, cell: str, expected: dt.date) -> None:
        frame = parse_text(tmp_path, HEAD + f"1,{cell},1,5,\n")
        assert frame["date"].to_list() == [expected]
        assert frame["invalid_field"].to_list() == [None]

    @pytest.mark.parametrize(
        "cell",
        ["31/02/2026", "29/02/2025", "2026-13-01", "10/31/2026", "01/10/26", "2026/10/01", "x"],
    )
    def test_rejected(self, tmp_path: Path, cell: str) -> None:
        frame = parse_text(tmp_path, HEAD + f"1,{cell},1,5,\n")
        assert frame["date"].to_list() == [None]
        assert frame["invalid_field"].to_list() == ["date"]
        assert frame["invalid_reason"].to_list() == [f"date '{cell}' is not a valid date"]

    def test_empty_date(self, tmp_path: Path) -> None:
        frame = parse_text(tmp_path, HEAD + "1,,1,5,\n")
        assert frame["invalid_reason"].to_list() == ["date is empty"]


class TestAmounts:
    def test_dot_decimal(self, tmp_path: Path) -> None:
        cells = [
            "1234.56",
            "$ 1,234.56",
            "$1,234,567.5",
            "-12.5",
            "-$ 3",
            "$-3",
            "0.0001",
            "",
            "  ",
            "007",
            "+4",
        ]
        assert amounts(tmp_path, cells) == [
            D("1234.56"),
            D("1234.56"),
            D("1234567.5"),
            D("-12.5"),
            D(-3),
            D(-3),
            D("0.0001"),
            D(0),
            D(0),
            D(7),
            D(4),
        ]

    def test_comma_decimal_with_dot_thousands(self, tmp_path: Path) -> None:
        cells = ["1.234,56", "$ 1.234.567,5", "-0,5", "12", "1 234,5"]
        assert amounts(tmp_path, cells, ",") == [
            D("1234.56"),
            D("1234567.5"),
            D("-0.5"),
            D(12),
            D("1234.5"),
        ]

    def test_other_separator_is_noise(self, tmp_path: Path) -> None:
        # With "." as decimal separator, "," is thousands noise anywhere before the decimals.
        assert amounts(tmp_path, ["12,34", "1,2,3.5"]) == [D(1234), D("123.5")]

    @pytest.mark.parametrize(
        "cell",
        ["abc", "1.2.3", "--5", "-$-5", "$", "1e5", "(5", "5)", "-(5)", "(5)-", "5-5", "1,2.3,4"],
    )
    def test_invalid(self, tmp_path: Path, cell: str) -> None:
        frame = parse_text(
            tmp_path,
            "cuenta;fecha;comprobante;debe;haber\n" + f"1;2026-10-01;1;{cell};\n",
            LedgerOptions(decimal_separator="."),
        )
        assert frame["debit"].to_list() == [None]
        assert frame["invalid_field"].to_list() == ["debit"]
        assert frame["invalid_reason"].to_list() == [f"debit '{cell}' is not a valid amount"]

    def test_signs_and_currency_noise(self, tmp_path: Path) -> None:
        cells = [
            "(100)", "50-", "-7", "(1,234.56)", "1,234.56-", "-", " - ", "$ -", "$ (3)",
            "US$ 1,000", "€ 2", "CLP 3", "4 USD", "1\u00a0234.5", "+4", "usd 5",
        ]  # fmt: skip
        assert amounts(tmp_path, cells) == [
            D(-100), D(-50), D(-7), D("-1234.56"), D("-1234.56"), D(0), D(0), D(0), D(-3),
            D(1000), D(2), D(3), D(4), D("1234.5"), D(4), D(5),
        ]  # fmt: skip

    def test_scale_limits_reject_instead_of_rounding(self, tmp_path: Path) -> None:
        eighteen = "0." + "1" * 18
        nineteen = "0." + "1" * 19
        eighteen_digits = "9" * 18
        nineteen_digits = "1" + "0" * 18
        cells = [eighteen, nineteen, eighteen_digits, nineteen_digits, "000" + "9" * 18]
        got = amounts(tmp_path, cells)
        assert got == [D(eighteen), None, D(eighteen_digits), None, D(eighteen_digits)]

    def test_exact_decimals_not_floats(self, tmp_path: Path) -> None:
        frame = parse_text(tmp_path, HEAD + "1,2026-10-01,1,0.1,\n1,2026-10-01,1,0.2,\n")
        assert frame["debit"].sum() == D("0.3")

    def test_signed_amount(self, tmp_path: Path) -> None:
        text = "cuenta,fecha,comprobante,monto\n" + "".join(
            f"1,2026-10-01,1,{v}\n" for v in ["100.5", "-40", "0", "", "x"]
        )
        frame = parse_text(tmp_path, text)
        assert frame["debit"].to_list() == [D("100.5"), D(0), D(0), D(0), None]
        assert frame["credit"].to_list() == [D(0), D(40), D(0), D(0), None]
        assert frame["invalid_field"].to_list() == [None, None, None, None, "amount"]
        assert frame["invalid_reason"][4] == "amount 'x' is not a valid amount"


class TestText:
    def test_trimmed_leading_zeros_kept_empty_is_null(self, tmp_path: Path) -> None:
        text = "cuenta,fecha,comprobante,debe,haber,tipo_doc,folio,glosa,centro_costo,rut\n"
        text += " 0012 ,2026-10-01, A-1 ,5,, fac , 007 ,  hola  ,  , 12.345.678-9\n"
        frame = parse_text(tmp_path, text)
        assert frame.select(
            "account_code",
            "voucher",
            "document_type",
            "document_number",
            "description",
            "cost_center",
            "third_party",
            "account_name",
        ).row(0) == ("0012", "A-1", "fac", "007", "hola", None, "12.345.678-9", None)

    def test_cp1252(self, tmp_path: Path) -> None:
        text = "cuenta;fecha;comprobante;debe;haber;glosa;nombre_cuenta\n"
        text += "1;01/10/2026;1;5;;Café ñandú €;Año\n"
        frame = parse_text(tmp_path, text, encoding="cp1252")
        assert frame["description"].to_list() == ["Café ñandú €"]
        assert frame["account_name"].to_list() == ["Año"]

    def test_cp1252_after_an_ascii_head(self, tmp_path: Path) -> None:
        # The sampled head is pure ASCII (so "UTF-8"); a later chunk is Windows-1252.
        text = "cuenta;fecha;comprobante;debe;haber;glosa\n" + "1;01/10/2026;1;5;;plain\n" * 8000
        text += "1;01/10/2026;1;5;;señal\n"
        frame = parse_text(tmp_path, text, encoding="cp1252")
        assert frame["description"][-1] == "señal"
        path = write(tmp_path, text, encoding="cp1252")
        layout, report = inspect_ledger(path), ReadReport()
        assert all(batch.height for batch in iter_movement_batches(path, layout, report=report))
        # The iteration's `parse` says how the file was read: not as the head showed.
        assert (layout.encoding, parse_record(layout, report)["encoding"]) == ("utf-8", "cp1252")

    def test_utf8_bom(self, tmp_path: Path) -> None:
        frame = parse_text(tmp_path, "\ufeff" + HEAD + "1,2026-10-01,1,5,\n")
        assert frame["account_code"].to_list() == ["1"]

    def test_tab_delimiter(self, tmp_path: Path) -> None:
        frame = parse_text(tmp_path, HEAD.replace(",", "\t") + "1\t2026-10-01\t1\t5\t\n")
        assert frame["debit"].to_list() == [D(5)]


class TestRejections:
    def test_first_invalid_field_in_table_order(self, tmp_path: Path) -> None:
        rows = [
            ",31/02/2026,,x,y",  # everything wrong: account_code first
            "1,31/02/2026,,x,y",  # then date
            "1,2026-10-01,,x,y",  # then voucher
            "1,2026-10-01,1,x,y",  # then debit
            "1,2026-10-01,1,5,y",  # then credit
            "1,2026-10-01,1,5,",  # valid
        ]
        frame = parse_text(tmp_path, HEAD + "\n".join(rows) + "\n")
        assert frame["invalid_field"].to_list() == [
            "account_code",
            "date",
            "voucher",
            "debit",
            "credit",
            None,
        ]
        assert frame["invalid_reason"].to_list() == [
            "account_code is empty",
            "date '31/02/2026' is not a valid date",
            "voucher is empty",
            "debit 'x' is not a valid amount",
            "credit 'y' is not a valid amount",
            None,
        ]

    def test_long_values_are_shortened_in_reasons(self, tmp_path: Path) -> None:
        frame = parse_text(tmp_path, HEAD + f"1,{'9' * 100},1,5,\n")
        assert frame["invalid_reason"][0] == f"date '{'9' * 60}…' is not a valid date"


def test_batches_have_at_most_batch_rows(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "".join(f"{i},2026-10-01,1,5,\n" for i in range(10)))
    sizes = [b.height for b in iter_movement_batches(path, inspect_ledger(path), 3)]
    assert max(sizes) <= 3
    assert sum(sizes) == 10
    _, frame = read(path, batch_rows=3)
    assert frame["line"].to_list() == list(range(2, 12))


def test_bare_cr_line_endings(tmp_path: Path) -> None:
    text = (HEAD + "1,2026-10-01,1,5,\n\n2,2026-10-01,1,,5\n").replace("\n", "\r")
    frame = parse_text(tmp_path, text)
    assert frame["line"].to_list() == [2, 4]
