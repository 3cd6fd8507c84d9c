"""Streaming the first sheet of an XLSX ledger as raw Utf8 frames (calamine loads the sheet)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl

from app.domain.ledger.cells import CellValue, cell_text, date_cell_text
from app.domain.ledger.format import AMOUNT_FIELDS, LedgerLayout
from app.domain.ledger.inspect import iter_xlsx_rows, non_blank


def iter_xlsx_frames(path: Path, layout: LedgerLayout, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Yield raw frames of non-blank rows: `line` (Int32, sheet row) + one text column per field."""
    converters = [(ref.field, ref.index, _converter(ref.field, layout)) for ref in layout.columns]
    rows = iter_xlsx_rows(path)
    next(rows, None)  # the header, row 1
    lines: list[int] = []
    values: dict[str, list[str | None]] = {name: [] for name, _, _ in converters}
    for line, row in enumerate(rows, start=2):
        if not non_blank(row):
            continue
        lines.append(line)
        width = len(row)
        for name, index, convert in converters:
            values[name].append(convert(row[index]) if index < width else None)
        if len(lines) >= batch_rows:
            yield _frame(lines, values)
            lines = []
            values = {name: [] for name in values}
    if lines:
        yield _frame(lines, values)


def _converter(name: str, layout: LedgerLayout) -> Callable[[CellValue | None], str | None]:
    if name == "date":
        return date_cell_text
    if name in AMOUNT_FIELDS and layout.decimal_separator != ".":
        # Numeric cells are native numbers: spell them with the upload's decimal separator so
        # the shared text parser does not take their "." for thousands noise.
        return lambda v: _number_text(v, layout.decimal_separator)
    return cell_text


def _number_text(value: CellValue | None, separator: str) -> str | None:
    text = cell_text(value)
    if text is not None and type(value) in (float, int):
        return text.replace(".", separator)
    return text


def _frame(lines: list[int], values: dict[str, list[str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        [pl.Series("line", lines, dtype=pl.Int32)]
        + [pl.Series(name, column, dtype=pl.String) for name, column in values.items()]
    )
