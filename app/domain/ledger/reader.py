"""Streaming typed movement batches out of a validated ledger file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import polars as pl

from app.domain.duplicates import FETCH_COLUMNS, FetchRows
from app.domain.ledger.csv import iter_csv_frames
from app.domain.ledger.format import LedgerLayout
from app.domain.ledger.parse import AMOUNT_DTYPE, MOVEMENT_SCHEMA, parse_movements
from app.domain.ledger.prefetch import prefetched
from app.domain.ledger.xlsx import iter_xlsx_frames

DEFAULT_BATCH_ROWS = 250_000

# The slice of a movement that `evaluate` needs, with compact types: low-cardinality text as
# Categorical, document_type upper-cased (codes compare upper-cased). About 76 bytes a row.
# Long or rarely needed text (FETCH_COLUMNS) stays out: evaluate asks for it line by line.
NARROW_SCHEMA: pl.Schema = pl.Schema(
    {
        "line": pl.Int32(),
        "account_code": pl.Categorical(),
        "date": pl.Date(),
        "voucher": pl.String(),
        "document_type": pl.Categorical(),
        "debit": AMOUNT_DTYPE,
        "credit": AMOUNT_DTYPE,
        "invalid_field": pl.Categorical(),
        "dup_hash": pl.UInt64(),
    }
)


def iter_movement_batches(
    source: Path | BinaryIO, layout: LedgerLayout, batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[pl.DataFrame]:
    """Yield MOVEMENT_SCHEMA frames of at most `batch_rows` movements, in file order.

    `source` is the file, or for a CSV ledger also a binary stream of it (a workbook is a zip
    archive, read from its end: it needs the file)."""
    # Reading runs one batch ahead in a thread while this one types the previous batch.
    if layout.kind == "xlsx":
        if not isinstance(source, Path):
            raise TypeError("an XLSX ledger is read from a file, not a stream")
        for raw in prefetched(iter_xlsx_frames(source, layout, batch_rows)):
            yield parse_movements(raw, layout)
        return
    for raw in prefetched(iter_csv_frames(source, layout, batch_rows)):
        # The header is record 1, the first row of the first frame (slicing copies nothing).
        rows = _drop_blank_rows(raw.slice(1) if raw["line"][0] == 1 else raw, layout)
        if rows.height:
            yield parse_movements(rows, layout)


def _drop_blank_rows(raw: pl.DataFrame, layout: LedgerLayout) -> pl.DataFrame:
    """Keep rows with at least one non-whitespace cell, mapped or not; rename mapped columns."""
    account = layout.column("account_code")
    assert account is not None
    # Only rows whose account code cell is empty can be blank: check all cells of those alone.
    suspects = raw.filter(~pl.col(f"c{account.index}").str.contains(r"\S").fill_null(False))
    if suspects.height:
        cells = [c for c in raw.columns if c != "line"]
        has_text = pl.any_horizontal(pl.col(c).str.contains(r"\S") for c in cells)
        blank = suspects.filter(~has_text.fill_null(False))["line"]
        if len(blank):
            raw = raw.filter(~pl.col("line").is_in(blank.implode()))
    return raw.select(
        pl.col("line"), *(pl.col(f"c{ref.index}").alias(ref.field) for ref in layout.columns)
    )


def narrow(batch: pl.DataFrame, keep_text: bool = False) -> pl.DataFrame:
    """The NARROW_SCHEMA slice of a movement batch (plus FETCH_COLUMNS when keep_text)."""
    return batch.select(
        pl.col("line"),
        pl.col("account_code").cast(pl.Categorical()),
        pl.col("date"),
        pl.col("voucher"),
        pl.col("document_type").str.to_uppercase().cast(pl.Categorical()),
        pl.col("debit"),
        pl.col("credit"),
        pl.col("invalid_field").cast(pl.Categorical()),
        pl.col("dup_hash"),
        *(FETCH_COLUMNS if keep_text else ()),
    )


def read_narrow(
    path: Path, layout: LedgerLayout, batch_rows: int = DEFAULT_BATCH_ROWS, keep_text: bool = False
) -> pl.DataFrame:
    """All movements of a ledger as one narrow frame (streams the file batch by batch)."""
    parts = [narrow(b, keep_text) for b in iter_movement_batches(path, layout, batch_rows)]
    if not parts:
        return pl.DataFrame(schema=NARROW_SCHEMA)  # (keep_text columns absent: nothing to keep)
    return pl.concat(parts, rechunk=False)  # rechunking would double peak memory


def ledger_row_fetcher(
    path: Path, layout: LedgerLayout, batch_rows: int = DEFAULT_BATCH_ROWS
) -> FetchRows:
    """A FetchRows that re-streams the ledger file: exact and memory-bounded, one pass per call."""
    columns = ("line", *FETCH_COLUMNS)

    def fetch(lines: pl.Series) -> pl.DataFrame:
        wanted = pl.DataFrame({"line": lines.cast(pl.Int32)})
        parts = [
            batch.select(columns).join(wanted, on="line", how="semi")
            for batch in iter_movement_batches(path, layout, batch_rows)
        ]
        if not parts:
            return pl.DataFrame(schema={c: MOVEMENT_SCHEMA[c] for c in columns})
        return pl.concat(parts)

    return fetch
