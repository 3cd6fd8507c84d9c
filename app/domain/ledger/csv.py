"""Streaming a CSV ledger as raw text frames of its data rows, in bounded memory.

`RecordSplitter` (records.py, the tokenizer the upload checks use too) cuts the byte stream
into pieces of whole records; Polars reads each piece with every column as text. A piece with
non-standard quoting (a stray quote, text after a closing quote) is first rewritten in standard
quoting (fields.py). Polars keeps blank lines as all-null rows, so the n-th row of a piece is
its n-th record: `line` is exact, quoted newlines included.

Frames hold `line` (Int32), one text column per resolved field, and `_fields` (Int32, the
row's field count when it has more fields than the header, else null). Blank rows are
dropped here and counted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Generator, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl

from app.domain.errors import MalformedLedger, PayloadTooLarge
from app.domain.ledger import fields
from app.domain.ledger.format import MAX_COLUMNS, LedgerLayout
from app.domain.ledger.records import Records, RecordSplitter, first_record_end
from app.domain.ledger.sniff import UTF8_BOM

# Rows parsed at a time. Small chunks keep the allocator's transient working set (several times
# the chunk) small and cache-friendly; larger ones gain nothing measurable in speed.
CHUNK_ROWS = 65_536
MIN_CHUNK_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 8 * 1024 * 1024
# The first chunk is small: until it is parsed, the stages after reading (typing, storing) have
# nothing to do. Later chunks are sized from the bytes per record it showed.
FIRST_CHUNK_BYTES = 1024 * 1024
# Up to this many columns Polars reads every column, and its error on a row with more fields
# than the header is the (free) check for such rows. Wider files read only the mapped columns,
# and count fields with numpy.
WHOLE_ROW_COLUMNS = 32
EXTRA_FIELDS = "_fields"


@dataclass
class RowCounts:
    """Data rows seen (the header excluded, blank rows included) and blank rows dropped; and
    the encoding the rows turned out to be in, when it is not the one the head showed."""

    read: int = 0
    blank: int = 0
    encoding: str | None = None


def iter_csv_frames(
    source: Path | BinaryIO, layout: LedgerLayout, batch_rows: int, counts: RowCounts | None = None
) -> Generator[pl.DataFrame, None, None]:
    """Yield raw frames of the non-blank data rows, in file order.

    `source` is the file, or a binary stream of it (reads may return fewer bytes than asked)."""
    width = len(layout.header)
    if width > MAX_COLUMNS:
        raise PayloadTooLarge(f"The header has {width} columns, more than {MAX_COLUMNS}")
    counts = counts if counts is not None else RowCounts()
    piece = _PieceReader(layout)
    splitter = RecordSplitter(layout.delimiter or ",")
    records_before = 0
    chunk_bytes = FIRST_CHUNK_BYTES
    with source.open("rb") if isinstance(source, Path) else nullcontext(source) as fh:
        data = fh.read(chunk_bytes).removeprefix(UTF8_BOM)
        while True:
            records = splitter.push(data) if data else splitter.finish()
            if records is not None:
                raw, blank = piece.read(records)
                counts.encoding = piece.fallback_encoding
                yield from _data_rows(raw, blank, records_before, batch_rows, counts)
                records_before += raw.height
                # Later chunks cover about CHUNK_ROWS records, whatever the row width.
                per_record = len(records.data) / max(1, raw.height)
                chunk_bytes = int(
                    min(max(per_record * CHUNK_ROWS, MIN_CHUNK_BYTES), MAX_CHUNK_BYTES)
                )
            if not data:
                return
            data = fh.read(chunk_bytes)


def first_record_fields(records: Records, delimiter: str, encoding: str) -> list[str]:
    """The fields of the first record of a piece (the header), read as any record is: in
    standard quoting, which the csv module reads as Polars does, without the fixed cost of a
    Polars query (most of a small upload's check). Polars reads a field past the csv module's
    size limit (128 KiB)."""
    end = first_record_end(records.data, records.runs)
    first = records.data[:end]
    standard, _ = _as_utf8(
        fields.standard_quoting(first, records.runs.head(end), ord(delimiter)) or first, encoding
    )
    try:
        return next(csv.reader(io.StringIO(standard.decode(), newline=""), delimiter=delimiter), [])
    except csv.Error:
        frame = pl.read_csv(
            standard, has_header=False, infer_schema=False, separator=delimiter, quote_char='"'
        )
        return [value or "" for value in frame.row(0)]


def _data_rows(
    raw: pl.DataFrame, blank: np.ndarray, records_before: int, batch_rows: int, counts: RowCounts
) -> Iterator[pl.DataFrame]:
    """The piece's non-blank data rows with their `line`, in batches; counted."""
    start = records_before + 1
    raw = raw.with_columns(pl.int_range(start, start + raw.height, dtype=pl.Int32).alias("line"))
    keep = ~blank
    if records_before == 0:  # the header is record 1
        keep[:1] = False
        blank[:1] = False
        counts.read -= 1
    counts.read += raw.height
    counts.blank += int(blank.sum())
    rows = raw if keep.all() else raw.filter(pl.Series(keep))
    for offset in range(0, rows.height, batch_rows):
        yield rows.slice(offset, batch_rows)


class _PieceReader:
    """Reads pieces of whole records into raw frames, one row per record."""

    def __init__(self, layout: LedgerLayout) -> None:
        self.layout = layout
        self.width = len(layout.header)
        self.delimiter = layout.delimiter or ","
        self.encoding = layout.encoding or "utf-8"
        self.schema = pl.Schema({f"c{i}": pl.String() for i in range(self.width)})
        # A first row with every column keeps Polars from taking the width from a short line.
        self.sentinel = (self.delimiter * (self.width - 1) + "\n").encode()
        self.mapped = [(f"c{ref.index}", ref.field) for ref in layout.columns]
        self.indices = sorted(ref.index for ref in layout.columns)
        account = layout.column("account_code")
        assert account is not None
        self.account = f"c{account.index}"
        # "cp1252" once a piece of a file whose head read as UTF-8 (ASCII, often) is not.
        self.fallback_encoding: str | None = None

    def read(self, records: Records) -> tuple[pl.DataFrame, np.ndarray]:
        """The piece's rows (mapped fields and EXTRA_FIELDS) and which of them are blank."""
        data, runs = records.data, records.runs
        if (nul := data.find(b"\x00")) >= 0:  # refused at upload too: text has none
            raise MalformedLedger(f"Byte {records.offset + nul} of the file is NUL: not text")
        standard = fields.standard_quoting(data, runs, ord(self.delimiter)) or data
        text, encoding = _as_utf8(standard, self.encoding)
        if encoding != self.encoding:
            self.fallback_encoding = encoding
        # Polars reads a delimiter that ends the file (its last line without a line end) as
        # nothing, not as one more field: such a piece has its fields counted.
        if self.width <= WHOLE_ROW_COLUMNS and not text.endswith(self.delimiter.encode()):
            try:
                frame = self._polars(text, whole=True)
            except pl.exceptions.ComputeError:
                pass  # a row with more fields than the header: count them
            else:
                return self._renamed(frame, None), self._blank_rows(frame, frame.columns)
        return self._read_counting_fields(records, text)

    def _read_counting_fields(
        self, records: Records, text: bytes
    ) -> tuple[pl.DataFrame, np.ndarray]:
        """The slow path: only mapped columns, and each record's fields counted with numpy."""
        data, runs = records.data, records.runs
        frame = self._polars(text, whole=False)
        starts, ends = fields.record_bounds(data, runs)
        if len(starts) != frame.height:  # both follow the csv module's rules: they must agree
            raise MalformedLedger(
                f"The CSV records after byte {records.offset} cannot be told apart "
                f"({len(starts)} records, {frame.height} rows)"
            )
        delimiters = fields.delimiters_before(data, runs, ord(self.delimiter))
        first = np.searchsorted(delimiters, starts)
        count = np.searchsorted(delimiters, ends) - first + 1
        # More fields than the header is ROW_INVALID even when the extra ones are empty (a
        # trailing delimiter): SPEC §3 refuses any such row rather than cut it.
        extra = np.where(count > self.width, count, 0)
        blank = self._blank_rows(frame, frame.columns)
        suspects = np.flatnonzero(blank)
        if suspects.size:  # blank in the mapped columns: the others may hold text
            blank[suspects] = ~fields.has_text(
                data, starts[suspects], ends[suspects], self.delimiter, self.encoding
            )
        counted = pl.Series(EXTRA_FIELDS, extra, dtype=pl.Int32)
        return self._renamed(frame, pl.when(counted > 0).then(counted)), blank

    def _polars(self, text: bytes, whole: bool) -> pl.DataFrame:
        try:
            frame = pl.read_csv(
                self.sentinel + text,
                has_header=False,
                schema=self.schema,
                columns=None if whole else self.indices,
                separator=self.delimiter,
                quote_char='"',
                truncate_ragged_lines=not whole,
                raise_if_empty=False,
            )
        except pl.exceptions.ComputeError as exc:
            if whole and "more fields" in str(exc):
                raise  # the caller counts fields
            raise MalformedLedger(f"The CSV file cannot be parsed: {exc}") from exc
        except pl.exceptions.PolarsError as exc:
            raise MalformedLedger(f"The CSV file cannot be parsed: {exc}") from exc
        return frame.slice(1)  # drop the sentinel row

    def _renamed(self, frame: pl.DataFrame, extra: pl.Expr | None) -> pl.DataFrame:
        return frame.select(
            *(pl.col(column).alias(name) for column, name in self.mapped),
            (extra if extra is not None else pl.lit(None)).cast(pl.Int32).alias(EXTRA_FIELDS),
        )

    def _blank_rows(self, frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
        """Rows whose cells (of `columns`) are all empty or whitespace. Only rows without an
        account code can be: all cells are checked for those alone."""
        text = pl.col(self.account).str.contains(r"\S").fill_null(False)
        suspects = frame.with_row_index("_row").filter(~text)
        blank = np.zeros(frame.height, dtype=bool)
        if suspects.height:
            any_text = pl.any_horizontal(
                pl.col(c).str.contains(r"\S").fill_null(False) for c in columns
            )
            rows = suspects.filter(~any_text)["_row"].to_numpy()
            blank[rows] = True
        return blank


def _as_utf8(body: bytes, encoding: str) -> tuple[bytes, str]:
    """The text in UTF-8, and the encoding it was read in."""
    if encoding == "cp1252":
        return body.decode("cp1252", errors="replace").encode("utf-8"), encoding
    if body.isascii():  # most ledgers, checked ten times faster than by decoding
        return body, encoding
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        # Files whose sampled head was ASCII may still be Windows-1252 further down.
        return body.decode("cp1252", errors="replace").encode("utf-8"), "cp1252"
    return body, encoding
