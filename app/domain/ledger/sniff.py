"""Sniffing an upload: file kind, text encoding and CSV delimiter."""

from __future__ import annotations

import csv
import io
from typing import Literal

from app.domain.errors import UnsupportedLedgerFile
from app.domain.ledger.format import LedgerKind

ZIP_MAGIC = b"PK\x03\x04"
UTF8_BOM = b"\xef\xbb\xbf"
DELIMITERS: tuple[str, ...] = (",", ";", "\t")
# Leading bytes of formats people upload by mistake; named so the 415 says what it saw.
_KNOWN_BINARY = {
    b"\xd0\xcf\x11\xe0": "a legacy Excel (.xls) or other OLE2 document",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
}
# Control characters that never appear in a text ledger (tab, LF, CR, FF and SUB are allowed).
_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 12, 13, 26))
_CONTROL_TABLE = bytes.maketrans(_CONTROL, b"\x00" * len(_CONTROL))

Encoding = Literal["utf-8", "utf-8-sig", "cp1252"]


def detect_kind(head: bytes, filename: str | None = None) -> LedgerKind:
    """Classify an upload from its first bytes: "xlsx" (zip magic) or "csv" (text), else raise."""
    if head.startswith(ZIP_MAGIC):
        return "xlsx"
    name = (filename or "").lower()
    for magic, what in _KNOWN_BINARY.items():
        if head.startswith(magic):
            raise UnsupportedLedgerFile(f"Expected a CSV or XLSX ledger, got {what}")
    if name.endswith((".xlsx", ".xlsm", ".xls")):
        raise UnsupportedLedgerFile(f"{filename} is not a valid XLSX workbook")
    if not head:
        return "csv"  # an empty file is text; inspection reports it as having no header
    if b"\x00" in head or _looks_binary(head):
        raise UnsupportedLedgerFile("Expected a CSV (text) or XLSX ledger, got binary content")
    detect_encoding(head)  # raises when the bytes decode as neither UTF-8 nor Windows-1252
    return "csv"


def detect_encoding(head: bytes) -> Encoding:
    """UTF-8 (with or without BOM) when the bytes decode as such, else Windows-1252."""
    if head.startswith(UTF8_BOM):
        return "utf-8-sig"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the sample is still UTF-8.
        if exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
            return "utf-8"
    try:
        head.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise UnsupportedLedgerFile("The file is neither UTF-8 nor Windows-1252 text") from exc
    return "cp1252"


def detect_delimiter(head: str) -> str:
    """The one of `,` `;` tab that splits the header (the first record of `head`, as the csv
    module reads it) into the most fields (`,` on a tie)."""
    counts = {}
    for delimiter in DELIMITERS:
        header = next(csv.reader(io.StringIO(head, newline=""), delimiter=delimiter), [])
        counts[delimiter] = len(header)
    return max(DELIMITERS, key=lambda d: counts[d])  # max keeps the first on ties: ","


def _looks_binary(head: bytes) -> bool:
    controls = len(head) - len(head.translate(_CONTROL_TABLE).replace(b"\x00", b""))
    return controls > max(2, len(head) // 100)
