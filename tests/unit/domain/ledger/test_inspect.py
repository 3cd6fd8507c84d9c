"""Upload-time checks: file kind, encoding, delimiter, header resolution (SPEC §3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.errors import (
    EmptyLedger,
    InvalidLedgerOptions,
    LedgerFormatError,
    UnsupportedLedgerFile,
)
from app.domain.ledger.format import AmountMode, LedgerOptions
from app.domain.ledger.inspect import inspect_ledger
from app.domain.ledger.sniff import detect_delimiter, detect_encoding, detect_kind
from tests.unit.domain.helpers import write
from tests.workbooks import write_xlsx


class TestDetectKind:
    def test_zip_magic_is_xlsx(self) -> None:
        assert detect_kind(b"PK\x03\x04rest", "anything.bin") == "xlsx"

    def test_text_is_csv(self) -> None:
        assert detect_kind(b"cuenta,fecha\n1,2\n", None) == "csv"

    @pytest.mark.parametrize(
        "head",
        [
            b"cuenta\x00fecha",  # NUL bytes: UTF-16 or binary
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1legacy xls",
            b"%PDF-1.7\n",
            b"\x1f\x8b\x08\x00gzip",
            bytes(range(1, 9)) * 20,  # control characters
        ],
    )
    def test_binary_is_unsupported(self, head: bytes) -> None:
        with pytest.raises(UnsupportedLedgerFile):
            detect_kind(head, "ledger.csv")

    def test_xlsx_name_without_zip_is_unsupported(self) -> None:
        with pytest.raises(UnsupportedLedgerFile):
            detect_kind(b"cuenta,fecha\n", "ledger.xlsx")


class TestDetectEncoding:
    def test_bom(self) -> None:
        assert detect_encoding(b"\xef\xbb\xbfcuenta") == "utf-8-sig"

    def test_utf8(self) -> None:
        assert detect_encoding("glosa,señal €".encode()) == "utf-8"

    def test_utf8_cut_mid_character(self) -> None:
        assert detect_encoding("año".encode()[:2]) == "utf-8"

    def test_cp1252(self) -> None:
        assert detect_encoding("glosa,señal €".encode("cp1252")) == "cp1252"


class TestDetectDelimiter:
    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            ("cuenta,fecha,comprobante", ","),
            ("cuenta;fecha;comprobante", ";"),
            ("cuenta\tfecha\tcomprobante", "\t"),
            ('"a;b",fecha,comprobante', ","),  # the ; inside quotes does not count
            ("cuenta", ","),
        ],
    )
    def test_most_frequent_outside_quotes(self, line: str, expected: str) -> None:
        assert detect_delimiter(line) == expected


class TestHeaderResolution:
    def test_aliases_case_and_spaces(self, tmp_path: Path) -> None:
        path = write(
            tmp_path, " CUENTA ;Fecha;Asiento;DEBE;haber;Tipo_Doc\n1;2026-10-01;1;1;;FAC\n"
        )
        layout = inspect_ledger(path)
        assert layout.delimiter == ";"
        assert layout.amount_mode is AmountMode.DEBIT_CREDIT
        assert layout.has_document_type
        assert {c.field: c.index for c in layout.columns} == {
            "account_code": 0,
            "date": 1,
            "voucher": 2,
            "debit": 3,
            "credit": 4,
            "document_type": 5,
        }
        assert layout.column("account_code").header == "CUENTA"  # type: ignore[union-attr]

    def test_missing_columns_name_fields_and_header(self, tmp_path: Path) -> None:
        path = write(tmp_path, "cuenta,monto_total,glosa\n1,2,3\n")
        with pytest.raises(LedgerFormatError) as err:
            inspect_ledger(path)
        assert err.value.missing_fields == ["date", "voucher", "debit", "credit"]
        assert err.value.header_found == ["cuenta", "monto_total", "glosa"]
        assert "date, voucher, debit, credit" in err.value.detail
        assert "'monto_total'" in err.value.detail

    def test_only_debit_reports_credit_missing(self, tmp_path: Path) -> None:
        path = write(tmp_path, "cuenta,fecha,comprobante,debe\n1,2026-10-01,1,5\n")
        with pytest.raises(LedgerFormatError) as err:
            inspect_ledger(path)
        assert err.value.missing_fields == ["credit"]

    def test_signed_amount(self, tmp_path: Path) -> None:
        path = write(tmp_path, "cuenta,fecha,comprobante,importe\n1,2026-10-01,1,5\n")
        layout = inspect_ledger(path)
        assert layout.amount_mode is AmountMode.SIGNED_AMOUNT
        assert layout.fields == ("account_code", "date", "voucher", "amount")
        assert not layout.has_document_type

    def test_debit_credit_win_over_amount(self, tmp_path: Path) -> None:
        path = write(tmp_path, "cuenta,fecha,comprobante,debe,haber,monto\n1,2026-10-01,1,5,,5\n")
        layout = inspect_ledger(path)
        assert layout.amount_mode is AmountMode.DEBIT_CREDIT
        assert "amount" not in layout.fields

    def test_column_map_naming_amount_alone_wins(self, tmp_path: Path) -> None:
        path = write(tmp_path, "cuenta,fecha,comprobante,debe,haber,Neto\n1,2026-10-01,1,5,,5\n")
        layout = inspect_ledger(path, LedgerOptions(column_map={"amount": "neto"}))
        assert layout.amount_mode is AmountMode.SIGNED_AMOUNT
        assert layout.column("amount").index == 5  # type: ignore[union-attr]
        assert "debit" not in layout.fields

    def test_column_map_naming_amount_and_debit_keeps_debit_credit(self, tmp_path: Path) -> None:
        path = write(tmp_path, "cuenta,fecha,comprobante,D,haber,Neto\n1,2026-10-01,1,5,,5\n")
        layout = inspect_ledger(path, LedgerOptions(column_map={"amount": "Neto", "debit": "D"}))
        assert layout.amount_mode is AmountMode.DEBIT_CREDIT

    def test_column_map_overrides_alias(self, tmp_path: Path) -> None:
        # "account" is an alias of account_code, but the map claims it for the voucher.
        path = write(tmp_path, "account,GL,date,debit,credit\n7,1100,2026-10-01,5,\n")
        layout = inspect_ledger(
            path, LedgerOptions(column_map={"voucher": "account", "account_code": "gl"})
        )
        assert layout.column("voucher").index == 0  # type: ignore[union-attr]
        assert layout.column("account_code").index == 1  # type: ignore[union-attr]

    def test_column_map_unknown_header(self, tmp_path: Path) -> None:
        path = write(tmp_path, "cuenta,fecha,comprobante,debe,haber\n1,2026-10-01,1,5,\n")
        with pytest.raises(InvalidLedgerOptions, match="Nope"):
            inspect_ledger(path, LedgerOptions(column_map={"voucher": "Nope"}))

    def test_column_map_unknown_field(self) -> None:
        with pytest.raises(InvalidLedgerOptions, match="colour"):
            LedgerOptions(column_map={"colour": "x"})

    @pytest.mark.parametrize("separator", ["", ";", "..", "x"])
    def test_bad_decimal_separator(self, separator: str) -> None:
        with pytest.raises(InvalidLedgerOptions):
            LedgerOptions(decimal_separator=separator)


class TestEmptyFiles:
    def test_empty_file(self, tmp_path: Path) -> None:
        with pytest.raises(EmptyLedger):
            inspect_ledger(write(tmp_path, ""))

    def test_header_only(self, tmp_path: Path) -> None:
        with pytest.raises(EmptyLedger):
            inspect_ledger(write(tmp_path, "cuenta,fecha,comprobante,debe,haber\n"))

    def test_header_and_blank_rows_only(self, tmp_path: Path) -> None:
        with pytest.raises(EmptyLedger):
            inspect_ledger(write(tmp_path, "cuenta,fecha,comprobante,debe,haber\n\n,,,,\n  ,\n"))

    def test_quoted_empty_and_whitespace_fields_are_blank(self, tmp_path: Path) -> None:
        text = 'cuenta,fecha,comprobante,debe,haber\n"","",,"  ",\n"\u00a0",,,,\r\n'
        with pytest.raises(EmptyLedger):
            inspect_ledger(write(tmp_path, text))

    def test_a_movement_after_a_mebibyte_of_blank_rows(self, tmp_path: Path) -> None:
        blank = ",,,,\n" * (300 * 1024)  # 1.5 MiB: the movement is in a later piece
        text = f"cuenta,fecha,comprobante,debe,haber\n{blank}1,2026-10-01,V1,5,\n"
        assert inspect_ledger(write(tmp_path, text)).header[0] == "cuenta"
        with pytest.raises(EmptyLedger):
            inspect_ledger(write(tmp_path, text.rsplit("\n1,", 1)[0] + "\n"))

    def test_a_quoted_movement_with_a_newline_counts(self, tmp_path: Path) -> None:
        text = 'cuenta,fecha,comprobante,debe,haber\n,,,,"\n5"\n'
        assert inspect_ledger(write(tmp_path, text)).header == (
            "cuenta", "fecha", "comprobante", "debe", "haber"
        )  # fmt: skip

    def test_missing_columns_checked_before_emptiness(self, tmp_path: Path) -> None:
        with pytest.raises(LedgerFormatError):
            inspect_ledger(write(tmp_path, "a,b\n"))

    def test_xlsx_header_only(self, tmp_path: Path) -> None:
        path = write_xlsx(tmp_path / "l.xlsx", [["cuenta", "fecha", "comprobante", "monto"]])
        with pytest.raises(EmptyLedger):
            inspect_ledger(path)

    def test_zip_that_is_not_a_workbook(self, tmp_path: Path) -> None:
        import zipfile

        path = tmp_path / "fake.xlsx"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("hello.txt", "hi")
        with pytest.raises(UnsupportedLedgerFile):
            inspect_ledger(path)


def test_cp1252_header(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cuenta;fecha;comprobante;debe;haber;glosa\n1;2026-10-01;1;5;;señal\n",
        encoding="cp1252",
    )
    assert inspect_ledger(path).encoding == "cp1252"


def test_header_field_past_the_csv_modules_limit(tmp_path: Path) -> None:
    long_name = "x" * (200 * 1024)  # the csv module refuses fields over 128 KiB
    path = write(
        tmp_path, f'cuenta,fecha,comprobante,debe,haber,"{long_name}"\n1,2026-10-01,1,5,,\n'
    )
    header = inspect_ledger(path).header
    assert header[:5] == ("cuenta", "fecha", "comprobante", "debe", "haber")
    assert header[5] == "x" * 256  # cut to MAX_HEADER_CHARS


def test_bom_header(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfcuenta,fecha,comprobante,debe,haber\n1,2026-10-01,1,5,\n")
    layout = inspect_ledger(path)
    assert layout.encoding == "utf-8-sig"
    assert layout.header[0] == "cuenta"
