"""Synchronous upload-time validation of a ledger file: kind, encoding, header, first movement."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from python_calamine import CalamineError, CalamineWorkbook

from app.domain.errors import EmptyLedger, MalformedLedger, UnsupportedLedgerFile
from app.domain.ledger.cells import cell_text
from app.domain.ledger.format import LedgerLayout, LedgerOptions, resolve_columns
from app.domain.ledger.sniff import detect_delimiter, detect_encoding, detect_kind

HEAD_BYTES = 64 * 1024


def inspect_ledger(path: Path, options: LedgerOptions | None = None) -> LedgerLayout:
    """Validate a ledger upload and describe how to stream it; raise a DomainError otherwise."""
    options = options or LedgerOptions()
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    kind = detect_kind(head, path.name)
    if kind == "xlsx":
        return _inspect_xlsx(path, options)
    return _inspect_csv(path, head, options)


def _inspect_csv(path: Path, head: bytes, options: LedgerOptions) -> LedgerLayout:
    if not head.strip():
        raise EmptyLedger("The file is empty: no header and no movements")
    encoding = detect_encoding(head)
    header_line = head.decode(encoding, errors="replace").split("\n", 1)[0]
    delimiter = detect_delimiter(header_line)
    with path.open(encoding=encoding, errors="replace", newline="") as text:
        rows = csv.reader(text, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(rows, [])]
            columns, mode = resolve_columns(header, options)
            has_movement = any(non_blank(row) for row in rows)
        except csv.Error as exc:
            raise MalformedLedger(f"The CSV file cannot be read: {exc}") from exc
    if not has_movement:
        raise EmptyLedger("The ledger has a header but no movements")
    return LedgerLayout(
        kind="csv",
        encoding=encoding,
        delimiter=delimiter,
        header=tuple(header),
        columns=columns,
        amount_mode=mode,
        decimal_separator=options.decimal_separator,
    )


def _inspect_xlsx(path: Path, options: LedgerOptions) -> LedgerLayout:
    rows = iter_xlsx_rows(path)
    header = [(cell_text(v) or "").strip() for v in next(rows, [])]
    columns, mode = resolve_columns(header, options)
    if not any(non_blank(row) for row in rows):
        raise EmptyLedger("The ledger has a header but no movements")
    return LedgerLayout(
        kind="xlsx",
        encoding=None,
        delimiter=None,
        header=tuple(header),
        columns=columns,
        amount_mode=mode,
        decimal_separator=options.decimal_separator,
    )


def iter_xlsx_rows(path: Path) -> Iterator[list]:
    """Rows of the first sheet from A1 (blank leading rows included, so row n is line n)."""
    try:
        workbook = CalamineWorkbook.from_path(str(path))
        if not workbook.sheet_names:
            raise UnsupportedLedgerFile("The XLSX workbook has no sheets")
        sheet = workbook.get_sheet_by_index(0)
        yield from sheet.iter_rows()
    except (CalamineError, OSError, ValueError) as exc:
        # calamine raises its own types and plain ValueErrors for zips that are not workbooks.
        raise UnsupportedLedgerFile(f"The file is not a readable XLSX workbook: {exc}") from exc


def non_blank(row: list) -> bool:
    """Whether a row has at least one non-empty cell."""
    return any(v is not None and (not isinstance(v, str) or v.strip()) for v in row)
