"""Streaming typed movement batches out of a validated ledger file, and how it was read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import Any, BinaryIO

import polars as pl

from app.domain.duplicates import FETCH_COLUMNS
from app.domain.errors import DomainError
from app.domain.ledger.amounts import AMOUNT_DTYPE, SeparatorEvidence
from app.domain.ledger.csv import RowCounts, iter_csv_frames
from app.domain.ledger.format import LedgerLayout
from app.domain.ledger.parse import amount_fields_of, parse_movements
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


class SeparatorChanged(DomainError):
    """Rows already handed out were typed with "." as decimal separator while the file had
    shown no evidence; evidence then showed ",". The caller reads the file again from the start
    with `separator` (this happens only when values such as `1.234` came before any evidence)."""

    def __init__(self, separator: str) -> None:
        super().__init__(f"the amounts use {separator!r} as decimal separator: read them again")
        self.separator = separator


@dataclass
class ReadReport:
    """How a file was read (the iteration's `parse`, with the layout): rows, blank rows and the
    decimal separator, given by the upload or detected from the amounts."""

    rows_read: int = 0
    blank_rows_skipped: int = 0
    decimal_separator: str | None = None
    decimal_separator_detected: bool = False
    encoding: str | None = None  # when the rows showed another than the head (see RowCounts)
    _evidence: SeparatorEvidence = field(default_factory=SeparatorEvidence)


def iter_movement_batches(
    source: Path | BinaryIO,
    layout: LedgerLayout,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    report: ReadReport | None = None,
    stop: Event | None = None,
) -> Iterator[pl.DataFrame]:
    """Yield MOVEMENT_SCHEMA frames of at most `batch_rows` movements, in file order.

    `source` is the file, or for a CSV ledger also a binary stream of it (a workbook is a zip
    archive, read from its end: it needs the file). `report` is filled in as the file is read;
    setting `stop` ends the reading thread at its next chunk. Raises SeparatorChanged (see
    there) when the layout leaves the decimal separator to detect."""
    report = report if report is not None else ReadReport()
    counts = RowCounts()
    if layout.kind == "xlsx":
        if not isinstance(source, Path):
            raise TypeError("an XLSX ledger is read from a file, not a stream")
        frames = iter_xlsx_frames(source, layout, batch_rows, counts)
    else:
        frames = iter_csv_frames(source, layout, batch_rows, counts)
    # Reading runs one batch ahead in a thread while this one types the previous batch.
    for raw in prefetched(frames, stop=stop):
        separator = _separator(raw, layout, report)
        _count(report, counts)
        yield parse_movements(raw, layout, separator)
    _count(report, counts)
    if report.decimal_separator is None:
        report.decimal_separator = "."  # no evidence either way


def _separator(raw: pl.DataFrame, layout: LedgerLayout, report: ReadReport) -> str:
    """The decimal separator for this batch: the upload's, or the one the evidence so far
    shows ("." without evidence, as SPEC §3 says)."""
    if layout.decimal_separator is not None:
        report.decimal_separator = layout.decimal_separator
        report.decimal_separator_detected = layout.decimal_separator_detected
        return layout.decimal_separator
    if report.decimal_separator is not None:
        return report.decimal_separator
    evidence = report._evidence
    seen_before = evidence.separated
    evidence.add([raw[name] for name in amount_fields_of(layout) if name in raw.columns])
    decided = evidence.decided
    report.decimal_separator_detected = True
    if decided is None:
        return "."
    report.decimal_separator = decided
    if decided == "," and seen_before:
        raise SeparatorChanged(decided)
    return decided


def _count(report: ReadReport, counts: RowCounts) -> None:
    report.rows_read, report.blank_rows_skipped = counts.read, counts.blank
    report.encoding = counts.encoding


def parse_record(layout: LedgerLayout, report: ReadReport | None) -> dict[str, Any]:
    """The iteration's `parse` (SPEC §3): what the upload showed, and once the worker has read
    the file, its rows and the decimal separator it used (null until then)."""
    given = layout.decimal_separator is not None and not layout.decimal_separator_detected
    return {
        "kind": layout.kind,
        "encoding": (report.encoding if report is not None else None) or layout.encoding,
        "delimiter": layout.delimiter,
        "decimal_separator": (
            report.decimal_separator if report is not None else layout.decimal_separator
        ),
        "decimal_separator_detected": not given,
        "headers": {ref.field: ref.header for ref in layout.columns},
        "rows_read": report.rows_read if report is not None else None,
        "blank_rows_skipped": report.blank_rows_skipped if report is not None else None,
    }


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
