"""Synchronous upload-time validation of a ledger file: kind, encoding, header, first movement.

It reads the file with the worker's own readers (the same tokenizer, the same cells, the same
test of a blank row), so what the upload accepts is what the worker reads.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Generator
from contextlib import closing
from pathlib import Path
from typing import BinaryIO

from app.domain.errors import EmptyLedger, PayloadTooLarge
from app.domain.ledger.csv import first_record_fields
from app.domain.ledger.fields import has_text, record_bounds
from app.domain.ledger.format import (
    MAX_COLUMNS,
    MAX_HEADER_BYTES,
    MAX_HEADER_CHARS,
    LedgerLayout,
    LedgerOptions,
    resolve_columns,
)
from app.domain.ledger.records import Records, RecordSplitter, RecordTooLong
from app.domain.ledger.sniff import UTF8_BOM, detect_delimiter, detect_encoding, detect_kind
from app.domain.ledger.workbook import Workbook
from app.domain.ledger.xlsx import SharedStrings, header_of, iter_piece_cells

HEAD_BYTES = 64 * 1024
_READ_BYTES = 1024 * 1024


def inspect_ledger(path: Path, options: LedgerOptions | None = None) -> LedgerLayout:
    """Validate a ledger upload and describe how to stream it; raise a DomainError otherwise."""
    options = options or LedgerOptions()
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    kind = detect_kind(head, path.name)
    if kind == "xlsx":
        return _inspect_xlsx(path, options)
    return _inspect_csv(path, head, options)


def csv_layout_of_head(head: bytes, options: LedgerOptions) -> LedgerLayout:
    """The layout inspect_ledger gives a CSV file that starts with `head`: its first
    MAX_HEADER_BYTES + 1 bytes or more (all of it, if shorter), which hold the whole header or
    prove it too long. It does not look for a movement after the header. For parsing a file
    while it is still arriving (its layout is checked against the accepted one at the end)."""
    return _csv_layout(lambda: io.BytesIO(head), head[:HEAD_BYTES], options)


def _inspect_csv(path: Path, head: bytes, options: LedgerOptions) -> LedgerLayout:
    layout = _csv_layout(lambda: path.open("rb"), head, options)
    assert layout.delimiter is not None and layout.encoding is not None
    if not _has_data_row(path, layout.delimiter, layout.encoding):
        raise EmptyLedger("The ledger has a header but no movements")
    return layout


def _csv_layout(
    open_file: Callable[[], BinaryIO], head: bytes, options: LedgerOptions
) -> LedgerLayout:
    if not head.strip():
        raise EmptyLedger("The file is empty: no header and no movements")
    encoding = detect_encoding(head)
    delimiter = detect_delimiter(head.removeprefix(UTF8_BOM).decode(encoding, errors="replace"))
    header = [h.strip()[:MAX_HEADER_CHARS] for h in _first_record(open_file, encoding, delimiter)]
    _check_width(len(header))
    columns, mode = resolve_columns(header, options)
    return LedgerLayout(
        kind="csv",
        encoding=encoding,
        delimiter=delimiter,
        header=tuple(header),
        columns=columns,
        amount_mode=mode,
        decimal_separator=options.decimal_separator,
    )


def _pieces(
    open_file: Callable[[], BinaryIO], splitter: RecordSplitter
) -> Generator[Records, None, None]:
    """The file's pieces of whole records, as the service's tokenizer cuts them."""
    with open_file() as fh:
        data = fh.read(_READ_BYTES).removeprefix(UTF8_BOM)
        while True:
            records = splitter.push(data) if data else splitter.finish()
            if records is not None:
                yield records
            if not data:
                return
            data = fh.read(_READ_BYTES)


def _first_record(open_file: Callable[[], BinaryIO], encoding: str, delimiter: str) -> list[str]:
    """The fields of the file's first record."""
    splitter = RecordSplitter(delimiter, max_record=MAX_HEADER_BYTES)
    with closing(_pieces(open_file, splitter)) as pieces:
        try:
            records = next(pieces, None)
        except RecordTooLong:
            raise PayloadTooLarge(f"The header is longer than {MAX_HEADER_BYTES} bytes") from None
    return [] if records is None else first_record_fields(records, delimiter, encoding)


def _has_data_row(path: Path, delimiter: str, encoding: str) -> bool:
    """Whether a record after the header holds text: iter_csv_frames drops the others as blank
    rows. Told by the tokenizer and the blank test the worker uses, without parsing fields (a
    Polars read of the first MiB was a fifth of a small upload's CPU)."""
    with closing(_pieces(lambda: path.open("rb"), RecordSplitter(delimiter))) as pieces:
        for index, records in enumerate(pieces):
            starts, ends = record_bounds(records.data, records.runs)
            header = 1 if index == 0 else 0
            if has_text(records.data, starts[header:], ends[header:], delimiter, encoding).any():
                return True
    return False


def _inspect_xlsx(path: Path, options: LedgerOptions) -> LedgerLayout:
    with Workbook(path) as book:
        pieces = iter_piece_cells(book, SharedStrings(book), None)
        piece = next(pieces, None)
        # Row 1 is in the first piece.
        header = [h[:MAX_HEADER_CHARS] for h in header_of(piece)] if piece is not None else []
        _check_width(len(header))
        columns, mode = resolve_columns(header, options)
        while piece is not None and not (piece.filled_rows >= 2).any():
            piece = next(pieces, None)
    if piece is None:
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


def _check_width(width: int) -> None:
    if width > MAX_COLUMNS:
        raise PayloadTooLarge(f"The header has {width} columns, more than {MAX_COLUMNS}")
