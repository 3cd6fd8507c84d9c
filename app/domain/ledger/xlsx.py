"""Streaming the first sheet of an XLSX ledger as raw text frames of its data rows.

The sheet's XML comes in pieces of whole rows (workbook.py) whose cells are located all at
once (sheet.py), so memory follows the piece, never the sheet's used range. Cells are read as
the spreadsheet shows them (SPEC §3): numbers at 15 significant digits, integers in a
zero-padded format (`000000`) padded, date-formatted numbers as dates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl

from app.domain.errors import PayloadTooLarge
from app.domain.ledger.csv import RowCounts
from app.domain.ledger.format import MAX_SHARED_STRINGS, LedgerLayout
from app.domain.ledger.parse import NUMERIC_PREFIX, REQUIRED_CODES, amount_fields_of
from app.domain.ledger.sheet import SheetState, locate_cells
from app.domain.ledger.workbook import Workbook, rich_text, unescape

_MAX_SERIAL = 2_958_465  # 9999-12-31
_SIGNIFICANT = 15  # the digits a spreadsheet shows of a number


class SharedStrings:
    """The workbook's shared strings, loaded as far as cells need them."""

    def __init__(self, book: Workbook) -> None:
        self._pieces = book.shared_string_pieces()
        self.texts = pl.Series("text", [], dtype=pl.String)
        self.filled = pl.Series("filled", [], dtype=pl.Boolean)

    def cover(self, count: int) -> None:
        """Load the table up to at least `count` strings (or to its end)."""
        parts = [self.texts]
        loaded = len(self.texts)
        while loaded < count and (piece := next(self._pieces, None)) is not None:
            parts.append(piece)
            loaded += len(piece)
            if loaded > MAX_SHARED_STRINGS:
                raise PayloadTooLarge(
                    f"The sheet uses shared string number {count:,}: the workbook's shared "
                    f"strings table holds more than {MAX_SHARED_STRINGS:,}, the most a ledger may"
                )
        if len(parts) > 1:
            self.texts = pl.concat(parts)
            self.filled = self.texts.str.contains(r"\S").fill_null(False)


@dataclass(frozen=True)
class PieceCells:
    """A piece's cells of the wanted columns as shown (`row`, `col`, `text`, and `number`:
    the exact decimal text of a number cell), and the rows with any non-blank cell."""

    cells: pl.DataFrame
    filled_rows: pl.Series


def iter_piece_cells(
    book: Workbook, strings: SharedStrings, columns: set[int] | None
) -> Iterator[PieceCells]:
    """The sheet, a piece at a time; `columns` (0-based) limits the typed cells."""
    state = SheetState()
    for piece in book.sheet_pieces():
        located = locate_cells(piece, state)
        shared = located["value"].filter(located["kind"] == "s").cast(pl.Int64, strict=False)
        top = shared.max()
        strings.cover(int(top) + 1 if isinstance(top, int) else 0)
        located = located.with_columns(_filled(located, strings).rename("filled"))
        wanted = located if columns is None else located.filter(pl.col("col").is_in(columns))
        typed = _typed(book, strings, wanted)
        rare = located.filter(pl.col("filled").is_null())  # inline and formula strings, dates
        if rare.height:
            rare = _typed(book, strings, rare).select("row", filled=_has_text(pl.col("text")))
        rows = pl.concat(
            [
                located.filter(pl.col("filled").fill_null(False)).select("row"),
                rare.filter("filled").select("row")
                if rare.height
                else located.clear().select("row"),
            ]
        )
        yield PieceCells(typed, rows["row"].unique().sort())


def _filled(cells: pl.DataFrame, strings: SharedStrings) -> pl.Series:
    """Whether each cell shows more than blanks; null where only its text tells (inline and
    formula strings, ISO dates)."""
    kind = cells["kind"]
    valued = kind.is_in(["n", "b", "e"])
    filled = (
        (cells["value"].str.len_bytes() > 0)
        .fill_null(False)
        .zip_with(valued, pl.Series([None] * cells.height, dtype=pl.Boolean))
    )
    shared = _shared_index(cells, strings)
    if shared.any():
        positions = cells["value"].cast(pl.Int64, strict=False).fill_null(0)
        found = strings.filled.gather(positions.clip(0, len(strings.texts) - 1))
        filled = found.zip_with(shared, filled)
    return filled.zip_with(~((kind == "s") & ~shared), pl.Series([False] * cells.height))


def _shared_index(cells: pl.DataFrame, strings: SharedStrings) -> pl.Series:
    """Cells that name a string of the table."""
    index = cells["value"].cast(pl.Int64, strict=False)
    return ((cells["kind"] == "s") & index.is_between(0, len(strings.texts) - 1)).fill_null(False)


def _has_text(text: pl.Expr) -> pl.Expr:
    return text.str.contains(r"\S").fill_null(False)


def _typed(book: Workbook, strings: SharedStrings, cells: pl.DataFrame) -> pl.DataFrame:
    """`row`, `col`, `text` (as shown) and `number` (numbers only) of located cells."""
    kind = cells["kind"]
    texts = pl.Series("text", [None] * cells.height, dtype=pl.String)
    found = _shared_index(cells, strings)
    if found.any():
        positions = cells["value"].cast(pl.Int64, strict=False).fill_null(0)
        shared = strings.texts.gather(positions.clip(0, len(strings.texts) - 1))
        texts = texts.zip_with(~found, shared)
    inline = kind == "inlineStr"
    if inline.any():
        texts = texts.zip_with(~inline, rich_text(cells["inline"].fill_null("")))
    plain = kind.is_in(["str", "e", "d"])
    if plain.any():
        texts = texts.zip_with(~plain, unescape(cells["value"]))
    number = _number_text(cells["value"].filter(kind == "n"))
    numbers = pl.Series("number", [None] * cells.height, dtype=pl.String)
    if len(number):
        numbers = numbers.scatter((kind == "n").arg_true(), number)
    styles = book.styles
    style = pl.col("style").fill_null(0)
    is_date = style.is_in(list(styles.dates))
    padded = style.is_in(list(styles.padding)) & pl.col("number").str.contains(r"^-?\d+$")
    shown = (
        pl.when(is_date)
        .then(_date_text(pl.col("number"), book.date1904).fill_null(pl.col("number")))
        .when(padded)
        .then(pl.col("number").str.zfill(style.replace_strict(dict(styles.padding), default=0)))
        .otherwise(pl.col("number"))
    )
    boolean = pl.when(pl.col("value") == "1").then(pl.lit("TRUE")).otherwise(pl.lit("FALSE"))
    return cells.with_columns(texts, numbers).select(
        "row",
        "col",
        pl.when(pl.col("kind") == "n")
        .then(shown)
        .when(pl.col("kind") == "b")
        .then(boolean)
        .otherwise("text")
        .alias("text"),
        pl.when(is_date).then(None).otherwise("number").alias("number"),
    )


def _number_text(values: pl.Series) -> pl.Series:
    """Numbers as a spreadsheet shows them: at most 15 significant digits (11518.282500000001
    is 11518.2825), no exponent, no trailing zeros. Most are already so; the rest (binary
    noise, exponents) go through Python."""
    text = values.str.strip_chars()
    digits = text.str.replace_all(r"[^0-9]", "").str.strip_chars_start("0").str.len_bytes()
    rare = (text.str.contains(r"[eE]") | (digits > _SIGNIFICANT)).fill_null(False)
    shown = (
        pl.when(pl.col("text").str.contains(r"\.", literal=False))
        .then(pl.col("text").str.strip_chars_end("0").str.strip_chars_end("."))
        .otherwise(pl.col("text"))
    )
    result = text.to_frame("text").select(shown.alias("number")).to_series()
    if rare.any():
        rows = rare.arg_true()
        result = result.scatter(rows, [_spreadsheet_number(v) for v in text.gather(rows).to_list()])
    return result


def _spreadsheet_number(text: str) -> str | None:
    try:
        value = float(text)
    except ValueError:
        return None
    shown = format(Decimal(format(value, f".{_SIGNIFICANT}g")), "f")
    return shown.rstrip("0").rstrip(".") if "." in shown else shown


def _date_text(number: pl.Expr, date1904: bool) -> pl.Expr:
    """ISO date of a date-formatted number (the time of day dropped). Serial 1 is 1900-01-01
    (1904-01-02 in the 1904 system); Excel's 1900-02-29 (serial 60) does not exist."""
    days = number.cast(pl.Float64, strict=False).floor().cast(pl.Int64, strict=False)
    if date1904:
        epoch, valid = pl.lit(dt.date(1904, 1, 1)), (days >= 0) & (days <= _MAX_SERIAL)
    else:
        epoch = (
            pl.when(days < 60)
            .then(pl.lit(dt.date(1899, 12, 31)))
            .otherwise(pl.lit(dt.date(1899, 12, 30)))
        )
        valid = (days >= 1) & (days <= _MAX_SERIAL) & (days != 60)
    return pl.when(valid).then((epoch + pl.duration(days=days)).dt.to_string("%Y-%m-%d"))


def header_of(piece: PieceCells) -> list[str]:
    """The texts of row 1, one per column up to the last non-empty one."""
    first = piece.cells.filter((pl.col("row") == 1) & _has_text(pl.col("text")))
    if first.height == 0:
        return []
    header = [""] * (int(first["col"].max()) + 1)  # type: ignore[arg-type]
    for col, text in first.select("col", "text").iter_rows():
        header[col] = text.strip()
    return header


def iter_xlsx_frames(
    path: Path, layout: LedgerLayout, batch_rows: int, counts: RowCounts | None = None
) -> Iterator[pl.DataFrame]:
    """Yield raw frames of the non-blank data rows: `line` (the sheet row), one text column per
    resolved field and `_num_<field>` for the amounts of numeric cells."""
    counts = counts if counts is not None else RowCounts()
    amounts = set(amount_fields_of(layout))
    fields = {ref.index: ref.field for ref in layout.columns}
    pending: list[pl.DataFrame] = []
    held = movements = 0
    last_row = 1
    with Workbook(path) as book:
        strings = SharedStrings(book)
        strings.cover(2**62)  # every piece needs them: all at once
        for piece in iter_piece_cells(book, strings, set(fields)):
            frame = _data_rows(piece, fields, amounts)
            if piece.filled_rows.len():
                last_row = max(last_row, int(piece.filled_rows.max()))  # type: ignore[arg-type]
            movements += frame.height
            counts.read, counts.blank = last_row - 1, last_row - 1 - movements
            pending.append(frame)
            held += frame.height
            while held >= batch_rows:
                rows = pl.concat(pending)
                yield rows.head(batch_rows)
                pending, held = [rows.slice(batch_rows)], rows.height - batch_rows
    if held:
        yield pl.concat(pending)


def _data_rows(piece: PieceCells, fields: dict[int, str], amounts: set[str]) -> pl.DataFrame:
    """One row per non-blank data row: its line, the text of each field and numeric amounts."""
    frame = piece.filled_rows.filter(piece.filled_rows >= 2).to_frame("row")
    cells = piece.cells.filter(pl.col("row") >= 2)
    for index, name in fields.items():
        cell = cells.filter(pl.col("col") == index).unique("row", keep="first")
        if name in amounts:
            number = pl.col("number")
            values = [pl.when(number.is_null()).then("text").alias(name)]
            values.append(number.alias(f"{NUMERIC_PREFIX}{name}"))
        elif name in REQUIRED_CODES:
            values = [pl.col("text").alias(name)]
        else:
            # A NUL (written _x0000_) cannot be stored as Postgres text nor JSON: an optional
            # field shows it as U+FFFD; a required code keeps it, and its row is rejected.
            text = pl.col("text")
            values = [text.str.replace_all("\x00", "\ufffd", literal=True).alias(name)]
        frame = frame.join(cell.select("row", *values), on="row", how="left")
    return frame.rename({"row": "line"}).with_columns(pl.col("line").cast(pl.Int32))
