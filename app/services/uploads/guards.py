"""Checks of a received ledger that come before its inspection: files built to exhaust the
service (a workbook that inflates far beyond the upload limit), and broken files that would
only fail later in a worker (a quoted field never closed) or with a vague message (UTF-16)."""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path

from app.domain.errors import MalformedLedger, PayloadTooLarge, UnsupportedLedgerFile
from app.domain.ledger.csv import count_quotes
from app.domain.ledger.inspect import HEAD_BYTES
from app.domain.ledger.sniff import detect_delimiter, detect_encoding, detect_kind

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass
class ReceivedBytes:
    """What the upload's bytes showed on their way to disk (counted chunk by chunk)."""

    size: int = 0
    head: bytes = b""
    quotes: int = 0
    first_nul: int | None = None

    def add(self, chunk: bytes) -> None:
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.quotes += count_quotes(chunk)
        if self.first_nul is None and (at := chunk.find(b"\x00")) >= 0:
            self.first_nul = self.size + at
        self.size += len(chunk)


def check_upload(path: Path, filename: str | None, seen: ReceivedBytes, limit: int) -> None:
    """Raise a DomainError for a hostile or broken upload; `limit` is MAX_UPLOAD_BYTES."""
    if _looks_utf16(seen.head):
        raise UnsupportedLedgerFile(
            "The file is UTF-16 text: save the ledger as UTF-8 (or Windows-1252) CSV, or as XLSX"
        )
    if detect_kind(seen.head, filename) == "xlsx":  # 415 for binary content
        _check_inflated_size(path, limit)
        return
    if seen.first_nul is not None:  # the first 64 KiB are checked by detect_kind: the rest too
        raise UnsupportedLedgerFile(
            f"Expected a CSV (text) or XLSX ledger: byte {seen.first_nul} is NUL, binary content"
        )
    if seen.quotes % 2:
        _check_quotes_closed(path, detect_encoding(seen.head), seen.head)


def _looks_utf16(head: bytes) -> bool:
    """A UTF-16 BOM, or text whose every other byte is NUL (UTF-16 without a BOM)."""
    if head.startswith(_UTF16_BOMS):
        return True
    sample = head[:4096]
    return len(sample) >= 8 and any(
        sample[parity::2].count(0) > len(sample) // 2 * 0.9 for parity in (0, 1)
    )


def _check_inflated_size(path: Path, limit: int) -> None:
    """MAX_UPLOAD_BYTES bounds the workbook's data, not only its compressed envelope: a small
    zip whose sheet inflates to gigabytes (a zip bomb) is refused before anything reads it."""
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


def _check_quotes_closed(path: Path, encoding: str, head: bytes) -> None:
    """An odd number of quotes: workers split records at newlines outside quotes (by quote
    parity), so they could not read the file. Name the quoted field never closed, if any."""
    delimiter = detect_delimiter(head.decode(encoding, errors="replace").split("\n", 1)[0])
    with path.open(encoding=encoding, errors="replace", newline="") as text:
        rows = csv.reader(text, delimiter=delimiter, strict=True)
        started = 1  # the line the current record starts on
        try:
            for _ in rows:
                started = rows.line_num + 1
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise MalformedLedger(
                    f"Line {started}: a quoted field is never closed (its opening double quote "
                    "has no closing one), so the rest of the file would be read as part of it"
                ) from None
    raise MalformedLedger(
        'The file has an odd number of double quotes ("), so its records cannot be told apart: '
        'a quote inside a field must be doubled in a quoted field (write Tubo 5" as "Tubo 5""")'
    )
