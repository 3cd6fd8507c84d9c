"""XLSX ledgers read as the spreadsheet shows them (SPEC §3): numeric cells as codes with their
zero padding, dates (with a time, too), numbers at 15 significant digits, blank rows, and the
XML writers really produce (prefixes, cells without references, inline and rich strings)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest

from app.domain.errors import LedgerFormatError, PayloadTooLarge
from app.domain.ledger.format import MAX_COLUMNS, AmountMode, LedgerOptions
from app.domain.ledger.workbook import PIECE_CELLS, Workbook
from tests.unit.domain.helpers import read
from tests.workbooks import Formatted, rewrite_sheet, write_xlsx

D = Decimal
HEADER = ["Cuenta", "Fecha", "Comprobante", "Debe", "Haber", "Tipo_Doc", "Folio", "Nombre_Cuenta"]


def test_numeric_codes_dates_and_amounts(tmp_path: Path) -> None:
    rows = [
        HEADER,
        [110105, dt.date(2026, 10, 1), 123, 1500.25, None, "fac", 7, "Banco"],
        ["0012", dt.datetime(2026, 10, 2, 13, 30), "A-1", None, 0.5, 33.0, 12.5, None],
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
        dt.date(2026, 10, 2),  # a date cell with a time: its date part
        dt.date(2026, 10, 31),
        None,
    ]
    # Numeric cells are numbers whatever the text cells' separator ("1.234,5" is text).
    assert frame["debit"].to_list() == [D("1500.25"), D(0), D("1234.5"), D(10)]
    assert frame["credit"].to_list() == [D(0), D("0.5"), D(0), D(0)]
    assert frame["document_type"].to_list() == ["fac", "33", None, None]
    assert frame["document_number"].to_list() == ["7", "12.5", None, None]
    assert frame["invalid_field"].to_list() == [None, None, None, "date"]


def test_float_noise_is_read_at_15_significant_digits(tmp_path: Path) -> None:
    """Excel stores 11518.2825 as the double 11518.282500000001 and writes all 17 digits; it
    shows 11518.2825, and that is the amount (SPEC §3)."""
    rows = [["cuenta", "fecha", "comprobante", "monto"]]
    values = [11518.2825, -11518.2825, 0.3, 1548.8267163, 12345678901234567.0, 1e-7]
    rows += [[1, dt.date(2026, 10, 1), 1, v] for v in values]
    path = write_xlsx(tmp_path / "l.xlsx", rows)
    written = {
        "11518.2825": "11518.282500000001",
        "0.3": "0.30000000000000004",
        "1548.8267163": "1548.8267162999998",
        "1.234567890123457E+16": "1.2345678901234568E+16",
        "9.9999999999999995E-8": "9.9999999999999995E-8",
    }
    rewrite_sheet(path, lambda xml: _replace_values(xml, written))
    _, frame = read(path)
    shown = [D("11518.2825"), D("-11518.2825"), D("0.3"), D("1548.8267163")]
    shown += [D("12345678901234600"), D("0.0000001")]
    assert [d - c for d, c in frame.select("debit", "credit").rows()] == shown


def _replace_values(xml: str, written: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        number = match.group(1)
        for shown, noisy in written.items():
            if number.lstrip("-").upper() == shown.upper() or float(number) == float(shown):
                sign = "-" if number.startswith("-") else ""
                return f"<v>{sign}{noisy}</v>"
        return match.group(0)

    return re.sub(r"<v>(-?[\d.E+-]+)</v>", value, xml)


def test_codes_keep_the_zero_padding_of_their_format(tmp_path: Path) -> None:
    rows = [
        ["cuenta", "fecha", "comprobante", "monto", "folio"],
        [Formatted(1234, "000000"), dt.date(2026, 10, 1), Formatted(7, "0000"), 5, 3],
        [Formatted(110105, "000000"), dt.date(2026, 10, 1), 8, -5, Formatted(3, "@")],
    ]
    _, frame = read(write_xlsx(tmp_path / "l.xlsx", rows))
    assert frame["account_code"].to_list() == ["001234", "110105"]
    assert frame["voucher"].to_list() == ["0007", "8"]
    assert frame["document_number"].to_list() == ["3", "3"]


def test_dates_from_cells_and_texts(tmp_path: Path) -> None:
    rows = [
        ["cuenta", "fecha", "comprobante", "monto"],
        [1, Formatted(46296, "yyyy-mm-dd"), 1, 5],  # a number in a date format is a date
        [1, Formatted(46296.75, "d/m/yy h:mm"), 1, 5],
        [1, "2026-10-01 00:00:00", 1, 5],
        [1, 46296, 1, 5],  # a plain number is not a date
    ]
    _, frame = read(write_xlsx(tmp_path / "l.xlsx", rows))
    assert frame["date"].to_list() == [dt.date(2026, 10, 1)] * 3 + [None]
    assert frame["invalid_reason"][3] == "date '46296' is not a valid date"


def test_signed_amount_and_column_map(tmp_path: Path) -> None:
    rows = [
        ["JENumber", "GLAccountNumber", "EffectiveDate", "Amount"],
        ["20151", 11845.0, dt.date(2014, 7, 2), 10.19],
        ["20151", 43440.0, dt.date(2014, 7, 2), -10.19],
    ]
    path = write_xlsx(tmp_path / "l.xlsx", rows)
    mapped = {"voucher": "JENumber", "account_code": "GLAccountNumber", "date": "EffectiveDate"}
    options = LedgerOptions(column_map=mapped)
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


def test_xml_as_other_writers_produce_it(tmp_path: Path) -> None:
    """A namespace prefix, single quotes, cells and rows without references, inline and rich
    strings, entities and OOXML escapes, booleans, an unused phonetic hint."""
    path = write_xlsx(tmp_path / "l.xlsx", [["x"]])
    sheet = (
        "<?xml version='1.0'?><x:worksheet xmlns:x='http://schemas.openxmlformats.org/"
        "spreadsheetml/2006/main'><x:sheetData>"
        "<x:row><x:c t='inlineStr'><x:is><x:t>cuenta</x:t></x:is></x:c>"
        "<x:c t='inlineStr'><x:is><x:t>fecha</x:t></x:is></x:c>"
        "<x:c t='inlineStr'><x:is><x:t>comprobante</x:t></x:is></x:c>"
        "<x:c t='inlineStr'><x:is><x:t>monto</x:t></x:is></x:c>"
        "<x:c t='inlineStr'><x:is><x:t>glosa</x:t></x:is></x:c></x:row>"
        "<x:row><x:c><x:v>110105</x:v></x:c><x:c t='str'><x:v>2026-10-01</x:v></x:c>"
        "<x:c t='b'><x:v>1</x:v></x:c><x:c><x:v>5</x:v></x:c>"
        "<x:c t='inlineStr'><x:is><x:r><x:t>A &amp; B</x:t></x:r><x:r><x:t xml:space='preserve'>"
        " &lt;c&gt;_x000D_x</x:t></x:r><x:rPh sb='0' eb='1'><x:t>hint</x:t></x:rPh></x:is></x:c>"
        "</x:row><x:row r='4'><x:c r='B4' t='str'><x:v>2026-10-02</x:v></x:c>"
        "<x:c r='A4'><x:v>7</x:v></x:c><x:c r='C4'><x:v>9</x:v></x:c><x:c r='D4'><x:v>-5</x:v>"
        "</x:c></x:row></x:sheetData></x:worksheet>"
    )
    rewrite_sheet(path, lambda _: sheet)
    _, frame = read(path)
    assert frame["line"].to_list() == [2, 4]
    assert frame["account_code"].to_list() == ["110105", "7"]
    assert frame["date"].to_list() == [dt.date(2026, 10, 1), dt.date(2026, 10, 2)]
    assert frame["voucher"].to_list() == ["TRUE", "9"]
    assert frame["description"].to_list() == ["A & B <c>\rx", None]


@pytest.mark.parametrize("far", ["XFD1048576", "ALM2", "A1048577"])
def test_a_far_cell_is_refused_without_building_the_range(tmp_path: Path, far: str) -> None:
    """Issue #16: a 5 kB workbook whose only far cell is XFD1048576 made calamine build the whole
    used range. Here the references are bounded before and while the cells are read."""
    path = write_xlsx(tmp_path / "l.xlsx", [HEADER, [1, dt.date(2026, 10, 1), 1, 5, None]])
    rewrite_sheet(
        path,
        lambda xml: xml.replace(
            "</sheetData>",
            f'<row r="{far[-7:].lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")}">'
            f'<c r="{far}"><v>1</v></c></row></sheetData>',
        ),
    )
    with Workbook(path) as book, pytest.raises(PayloadTooLarge, match="past"):
        book.check_bounds()
    with pytest.raises(PayloadTooLarge, match="past"):
        read(path)


def _empty_cells(tmp_path: Path, rows: int, per_row: int) -> Path:
    """A ledger followed by `rows` rows of `per_row` empty cells without references (`<c/>`,
    the smallest a cell can be: 4 bytes)."""
    path = write_xlsx(tmp_path / "l.xlsx", [HEADER, [1, dt.date(2026, 10, 1), 1, 5, None]])
    empty = "<row>" + "<c/>" * per_row + "</row>"
    return rewrite_sheet(
        path, lambda xml: xml.replace("</sheetData>", empty * rows + "</sheetData>")
    )


def test_sheet_pieces_are_cut_by_their_cells(tmp_path: Path) -> None:
    """Issue #16: locating a cell costs a few hundred bytes whatever its size, so a 4 MiB piece
    of `<c/>` (a million cells) cost 300 MiB; pieces are cut at about PIECE_CELLS cells."""
    path = _empty_cells(tmp_path, 1_000, 1_000)
    with Workbook(path) as book:
        cells = [piece.count("<c") for piece in book.sheet_pieces()]
    assert sum(cells) > 1_000_000
    assert max(cells) <= 2 * PIECE_CELLS + MAX_COLUMNS  # one read's cells past the count at most
    assert read(path)[1]["line"].to_list() == [2]


def test_a_row_of_too_many_cells_is_refused_before_they_are_located(tmp_path: Path) -> None:
    """A row of four million `<c/>` (16 MB of XML, no reference past the bounds) cost the worker
    900 MiB to locate before its columns were refused."""
    path = _empty_cells(tmp_path, 1, 4_000_000)
    with pytest.raises(PayloadTooLarge, match=f"A row of the sheet has more than {MAX_COLUMNS}"):
        read(path)


def test_a_shared_strings_table_past_the_bound_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every row's description is a string of its own: 40 rows, 40-odd shared strings.
    rows = [HEADER, *([110105, "2026-10-01", n, 1, 0, "fac", n, f"glosa {n}"] for n in range(40))]
    path = write_xlsx(tmp_path / "l.xlsx", rows)
    assert len(read(path, LedgerOptions())[1]) == 40
    monkeypatch.setattr("app.domain.ledger.xlsx.MAX_SHARED_STRINGS", 10)
    with pytest.raises(PayloadTooLarge, match="shared strings table holds more than 10"):
        read(path, LedgerOptions())
