"""Checks of a received ledger that come before its inspection: files built to exhaust the
service (a workbook that inflates far beyond the upload limit or reaches far cells, a record or
a header without end), and broken files that would only fail later in a worker (a quoted field
never closed) or with a vague message (UTF-16).

A CSV's records are cut while it arrives by the tokenizer the worker reads it with
(RecordSplitter), so the two never disagree, and a record that never ends is refused as soon
as it passes the bound, not once it has all arrived."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from app.domain.errors import MalformedLedger, PayloadTooLarge, UnsupportedLedgerFile
from app.domain.ledger.fields import delimiters_before
from app.domain.ledger.format import MAX_COLUMNS, MAX_HEADER_BYTES
from app.domain.ledger.inspect import HEAD_BYTES
from app.domain.ledger.records import (
    Records,
    RecordSplitter,
    RecordTooLong,
    UnclosedQuote,
    first_record_end,
    line_ends,
)
from app.domain.ledger.sniff import UTF8_BOM, ZIP_MAGIC, detect_delimiter, detect_kind
from app.domain.ledger.workbook import Workbook

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass
class ReceivedBytes:
    """What the upload's bytes showed on their way to disk (seen block by block)."""

    size: int = 0
    head: bytes = b""
    first_nul: int | None = None
    _splitter: RecordSplitter | None = None
    _delimiter: str = ","
    _lines_before: int = 0  # line ends before the splitter's held bytes
    _header_checked: bool = False

    def add(self, chunk: bytes) -> None:
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        if self.first_nul is None and (at := chunk.find(b"\x00")) >= 0:
            self.first_nul = self.size + at
        first = self.size == 0
        self.size += len(chunk)
        if first and not chunk.startswith(ZIP_MAGIC) and not _looks_utf16(chunk):
            text = self.head.removeprefix(UTF8_BOM).decode("utf-8", errors="replace")
            self._delimiter = detect_delimiter(text)
            self._splitter = RecordSplitter(self._delimiter)
            chunk = chunk.removeprefix(UTF8_BOM)
        if self._splitter is None or self.first_nul is not None:
            self._splitter = None  # not text: check_upload says what it is
            return
        try:
            records = self._splitter.push(chunk)
        except RecordTooLong as exc:
            where = exc.offset if exc.quote_offset is None else exc.quote_offset
            quoted = exc.quote_offset is not None
            raise PayloadTooLarge(
                f"Line {self._line_at(where)}: a record goes on for more than {exc.limit} "
                "bytes"
                # The quote may close later on: the field is long, not necessarily unclosed.
                + (
                    ", in a quoted field opened there (is its closing quote missing?)"
                    if quoted
                    else ""
                )
            ) from None
        if records is not None:
            self._seen(records)
        elif not self._header_checked and self._splitter.pending > MAX_HEADER_BYTES:
            raise PayloadTooLarge(f"The header is longer than {MAX_HEADER_BYTES} bytes")

    def finish(self) -> None:
        """The end of a CSV upload: its last record, or a quoted field never closed."""
        if self._splitter is None:
            return
        try:
            records = self._splitter.finish()
        except UnclosedQuote as exc:
            raise MalformedLedger(
                f"Line {self._line_at(exc.offset)}: a quoted field is never closed (its opening "
                "double quote has no closing one), so the rest of the file would be read as "
                'part of it. A quote inside a quoted field is doubled: "Tubo 5"" PVC"'
            ) from None
        if records is not None:
            self._seen(records)

    def _seen(self, records: Records) -> None:
        if not self._header_checked:
            self._header_checked = True
            end = first_record_end(records.data, records.runs)
            if end > MAX_HEADER_BYTES:
                raise PayloadTooLarge(f"The header is longer than {MAX_HEADER_BYTES} bytes")
            header = records.data[:end]
            delimiters = delimiters_before(header, records.runs.head(end), ord(self._delimiter))
            width = delimiters.size + 1
            if width > MAX_COLUMNS:
                raise PayloadTooLarge(f"The header has {width} columns, more than {MAX_COLUMNS}")
        self._lines_before += line_ends(records.data)

    def _line_at(self, offset: int) -> int:
        """The line (1-based, as a text editor counts) of a stream offset in the held bytes."""
        assert self._splitter is not None
        before = self._splitter.held()[: offset - self._splitter.offset]
        return self._lines_before + line_ends(before) + 1


def check_upload(path: Path, filename: str | None, seen: ReceivedBytes, limit: int) -> None:
    """Raise a DomainError for a hostile or broken upload; `limit` is MAX_UPLOAD_BYTES."""
    if _looks_utf16(seen.head):
        raise UnsupportedLedgerFile(
            "The file is UTF-16 text: save the ledger as UTF-8 (or Windows-1252) CSV, or as XLSX"
        )
    if detect_kind(seen.head, filename) == "xlsx":  # 415 for binary content
        _check_workbook(path, limit)
        return
    if seen.first_nul is not None:  # the first 64 KiB are checked by detect_kind: the rest too
        raise UnsupportedLedgerFile(
            f"Expected a CSV (text) or XLSX ledger: byte {seen.first_nul} is NUL, binary content"
        )
    seen.finish()


def _looks_utf16(head: bytes) -> bool:
    """A UTF-16 BOM, or text whose every other byte is NUL (UTF-16 without a BOM)."""
    if head.startswith(_UTF16_BOMS):
        return True
    sample = head[:4096]
    return len(sample) >= 8 and any(
        sample[parity::2].count(0) > len(sample) // 2 * 0.9 for parity in (0, 1)
    )


def _check_workbook(path: Path, limit: int) -> None:
    """MAX_UPLOAD_BYTES bounds the workbook's data, not only its compressed envelope: a small
    zip whose sheet inflates to gigabytes (a zip bomb) is refused before anything reads it; so
    is a sheet whose cells reach past the bounds (a far cell alone makes a huge used range)."""
    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return  # not a readable zip: inspection says so in its own words
    if inflated > limit:
        raise PayloadTooLarge(
            f"The workbook inflates to {inflated} bytes, more than MAX_UPLOAD_BYTES ({limit}), "
            "which also bounds the uncompressed size of an XLSX upload"
        )
    with Workbook(path) as book:
        book.check_bounds()
