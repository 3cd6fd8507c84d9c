"""Locating the cells of a piece of sheet XML: row, column, style, type and raw value, for all
cells at once.

The piece is split at each `<c` (a literal split, the fastest thing Polars does with text);
each fragment holds one cell's attributes and content, and possibly the tags that end its row
and start the next, and short patterns read the attributes from its start tag. Cells and rows
without an `r` reference follow the one before them, as OOXML says.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from app.domain.errors import PayloadTooLarge
from app.domain.ledger.format import MAX_COLUMNS, MAX_XLSX_CELLS, MAX_XLSX_ROWS

_Q = r"""["']"""


@dataclass
class SheetState:
    """What reading a sheet carries from piece to piece."""

    prefix: str | None = None  # the namespace prefix of the sheet's elements ("" or "x:")
    last_row: int = 0
    cells: int = 0


def locate_cells(piece: str, state: SheetState) -> pl.DataFrame:
    """Cells of a piece of whole rows: `row` (1-based), `col` (0-based), `style` (Int64),
    `kind` (the `t` attribute, "n" by default), `value` (the raw `<v>` text) and `inline`
    (the XML of an inline string)."""
    if state.prefix is None:
        found = pl.Series([piece]).str.extract(r"<([\w.-]+:)?sheetData\b").item()
        state.prefix = found or ""
    p = state.prefix
    fragments = pl.Series("xml", [piece]).str.split(f"<{p}c").explode().to_frame()
    fragments = fragments.with_row_index("fragment")
    # A cell's fragment starts with its attributes (not `ols>` of `<cols>`, and so on).
    cells = (
        fragments.filter(pl.col("xml").str.contains(r"^[\s/>]") & (pl.col("fragment") > 0))
        .select("fragment", pl.col("xml").str.splitn(">", 2).alias("parts"))
        .unnest("parts")
    )
    cells = _attributes(cells.rename({"field_0": "tag", "field_1": "content"}))
    state.cells += cells.height
    if state.cells > MAX_XLSX_CELLS:
        raise PayloadTooLarge(f"The sheet has more than {MAX_XLSX_CELLS} cells")
    if cells["row"].null_count():  # some cell without a reference: rows from the row tags
        rows = _row_numbers(fragments, p, state).select("fragment", "row")
        cells = cells.drop("row").join(rows, on="fragment", how="left")
    elif cells.height:
        state.last_row = max(state.last_row, int(cells["row"].max()))  # type: ignore[arg-type]
    if state.last_row > MAX_XLSX_ROWS:
        raise PayloadTooLarge(f"The sheet has a row {state.last_row}, past row {MAX_XLSX_ROWS}")
    content = pl.col("content")
    cells = cells.with_columns(
        # Empty for a self-closing cell (`<c r="A1"/>`): its tag ends with "/".
        value=pl.when(~pl.col("tag").str.ends_with("/")).then(
            content.str.extract(rf"<{p}v(?:\s[^>]*)?>([^<]*)<")
        ),
        inline=_inline_strings(cells, p),
        col=_columns(cells),
    )
    far = cells.filter(pl.col("col") >= MAX_COLUMNS)
    if far.height:
        cell = far.row(0, named=True)
        raise PayloadTooLarge(
            f"The sheet has a cell in row {cell['row']}, column {cell['col'] + 1}: past column "
            f"{MAX_COLUMNS}, the most a ledger may have"
        )
    return cells.select("row", "col", "style", "kind", "value", "inline")


def _inline_strings(cells: pl.DataFrame, p: str) -> pl.Series:
    """The XML of each inline string's item (`<is>` content), null for other cells. Only those
    cells are searched (an expression would search every cell)."""
    inline = pl.Series("inline", [None] * cells.height, dtype=pl.String)
    rows = (cells["kind"] == "inlineStr").fill_null(False)
    if not rows.any():
        return inline
    items = cells["content"].filter(rows).str.extract(rf"(?s)<{p}is\b[^>]*>(.*?)</{p}is\s*>")
    return inline.scatter(rows.arg_true(), items)


def _attributes(cells: pl.DataFrame) -> pl.DataFrame:
    """`letters` and `row` (of the reference), `style` and `kind` of each cell's start tag.

    Writers put the reference first (` r="A2" s="1" t="s"`): split at its quotes (a literal
    split, several times faster than a pattern), it is read by position; the rest by short
    patterns. Other tags are read by pattern, attribute by attribute."""
    parts = pl.col("tag").str.splitn('"', 3)
    head, reference, rest = (parts.struct.field(f"field_{n}") for n in range(3))
    cells = cells.with_columns(
        usual=(head == " r=").fill_null(False),
        letters=reference.str.strip_chars_end("0123456789"),
        row=reference.str.strip_chars_start(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        ).cast(pl.Int64, strict=False),
        style=rest.str.extract(rf"^\s+s\s*=\s*{_Q}(\d+){_Q}").cast(pl.Int64, strict=False),
        kind=rest.str.extract(rf"\st\s*=\s*{_Q}(\w+){_Q}"),
    )
    if cells["usual"].all():
        return cells.with_columns(pl.col("kind").fill_null("n"))
    tag, odd = pl.col("tag"), ~pl.col("usual")

    def attribute(name: str) -> pl.Expr:
        return tag.str.extract(rf"\s{name}\s*=\s*{_Q}([^\"']*){_Q}")

    reference = attribute("r").str.extract_groups(r"^([A-Za-z]+)(\d+)$")
    return cells.with_columns(
        letters=pl.when(odd).then(reference.struct.field("1")).otherwise("letters"),
        row=pl.when(odd)
        .then(reference.struct.field("2").cast(pl.Int64, strict=False))
        .otherwise("row"),
        style=pl.when(odd).then(attribute("s").cast(pl.Int64, strict=False)).otherwise("style"),
        kind=pl.when(odd).then(attribute("t")).otherwise("kind").fill_null("n"),
    )


def _row_numbers(fragments: pl.DataFrame, p: str, state: SheetState) -> pl.DataFrame:
    """Each fragment's row: the last row started in the fragments before it. A row without
    `r` follows the one before (row tags are counted)."""
    has_rows = pl.col("xml").str.contains(f"<{p}row", literal=True)
    fragments = fragments.with_columns(
        started=pl.when(has_rows).then(pl.col("xml").str.count_matches(rf"<{p}row\b")).otherwise(0),
        explicit=pl.when(has_rows).then(
            pl.col("xml")
            .str.extract(rf"(?s).*<{p}row\b[^>]*?\sr\s*=\s*{_Q}(\d+)")
            .cast(pl.Int64, strict=False)
        ),
    )
    count = pl.col("started").cum_sum()
    # The number of the last row started so far: an explicit one, plus the rows started after
    # it without a number of their own.
    current = (pl.col("explicit") - count).forward_fill().fill_null(state.last_row) + count
    fragments = fragments.with_columns(current.alias("current"))
    last = fragments["current"].last()
    state.last_row = int(last) if last is not None else state.last_row  # type: ignore[arg-type]
    return fragments.with_columns(row=pl.col("current").shift(1))


def _columns(cells: pl.DataFrame) -> pl.Series:
    """0-based columns: from the reference letters, or one past the cell before in the row."""
    # Letters read as a base-36 number give each letter's value (A = 10) by division.
    letters = pl.col("letters").str.to_uppercase()
    base36 = letters.str.to_integer(base=36, strict=False)
    size = letters.str.len_chars()
    named = (
        pl.when(size == 1)
        .then(base36 - 9)
        .when(size == 2)
        .then((base36 // 36 - 9) * 26 + base36 % 36 - 9)
        .when(size == 3)
        .then((base36 // 1296 - 9) * 676 + (base36 // 36 % 36 - 9) * 26 + base36 % 36 - 9)
        .when(size > 3)
        .then(pl.lit(10**6))
        .cast(pl.Int64)
        - 1
    )
    if cells["letters"].null_count() == 0:  # every cell has its reference: the usual case
        return cells.select(named.alias("col")).to_series()
    index = pl.int_range(pl.len(), dtype=pl.Int64).over("row")
    implicit = ((named - index).forward_fill().over("row").fill_null(0) + index).alias("col")
    return cells.select(implicit).to_series()
