"""Ledger field catalog, upload options and header resolution (SPEC §3)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from app.domain.errors import InvalidLedgerOptions, LedgerFormatError

LedgerKind = Literal["csv", "xlsx"]


class AmountMode(StrEnum):
    """How a file carries amounts."""

    DEBIT_CREDIT = "debit_credit"
    SIGNED_AMOUNT = "signed_amount"


# Field → accepted header aliases (the field name itself is always accepted), in table order.
FIELD_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "account_code": (
            "cuenta",
            "codigo_cuenta",
            "cod_cuenta",
            "account",
            "account_number",
            "gl_account",
        ),
        "date": ("fecha", "fecha_contable", "posting_date", "effective_date"),
        "voucher": (
            "comprobante",
            "n_comprobante",
            "no_comprobante",
            "nro_comprobante",
            "numero_comprobante",
            "asiento",
            "n_asiento",
            "entry",
            "journal_entry",
        ),
        "debit": ("debe", "cargo", "debito"),
        "credit": ("haber", "abono", "credito"),
        "amount": ("monto", "importe"),
        "document_type": ("tipo_doc", "tipo_documento", "tipo_de_documento", "doc_type"),
        "document_number": ("numero_doc", "num_doc", "folio"),
        "description": ("glosa", "detalle"),
        "account_name": ("nombre_cuenta",),
        "cost_center": ("centro_costo",),
        "third_party": ("auxiliar", "rut"),
    }
)
FIELDS: tuple[str, ...] = tuple(FIELD_ALIASES)
KEY_FIELDS: tuple[str, ...] = ("account_code", "date", "voucher")
AMOUNT_FIELDS: tuple[str, ...] = ("debit", "credit", "amount")
TEXT_FIELDS: tuple[str, ...] = (
    "document_type",
    "document_number",
    "description",
    "account_name",
    "cost_center",
    "third_party",
)
DECIMAL_SEPARATORS: tuple[str, ...] = (".", ",")

# Bounds on what a ledger file may hold, so that reading one never needs memory in proportion
# to what a client sends (issue #16). They hold at upload (refused there, 413) and again in the
# worker (the iteration fails), for files stored before a bound existed. Not settings: they
# follow from the worker's memory budget and from what ledgers really are, not from a
# deployment's taste; MAX_UPLOAD_BYTES, which is a setting, bounds everything else.
# Characters of a header name that count (and are shown): no alias is longer than 30.
MAX_HEADER_CHARS = 256
# Bytes of a CSV header: a thousand names of that length.
MAX_HEADER_BYTES = 1024 * 1024
# Columns of a CSV header or of an XLSX sheet. A wide ERP export has a few hundred.
MAX_COLUMNS = 1_000
# Bytes of one CSV record: a real row is a few hundred bytes, and even a 32,767-character
# spreadsheet cell in every one of a few hundred columns stays below this.
MAX_RECORD_BYTES = 16 * 1024 * 1024
# Rows of an XLSX sheet: what a spreadsheet program can hold.
MAX_XLSX_ROWS = 1_048_576
# Cells present in an XLSX sheet (they are streamed, never held: this bounds the time).
MAX_XLSX_CELLS = 50_000_000
# Entries of a workbook's shared strings table that a sheet may make the worker load: a sheet
# holds at most MAX_XLSX_ROWS rows, and a ledger a few text columns, so a legitimate table is
# smaller; a table of millions of empty strings (a few KB zipped) would cost gigabytes.
MAX_SHARED_STRINGS = 4_000_000
_NOT_WORD = re.compile(r"[\W_]+")
# Letters that do not decompose into a base letter and an accent.
_LETTERS = str.maketrans({"ß": "ss", "æ": "ae", "ø": "o", "đ": "d", "ł": "l", "œ": "oe"})


def fold_header(name: str) -> str:
    """Header comparison key (SPEC §3): trimmed, case and accents dropped, and every run of
    spaces or punctuation made one `_` (`Nº Comprobante` → `no_comprobante`)."""
    name = name.strip()[:MAX_HEADER_CHARS]
    decomposed = unicodedata.normalize("NFKD", name.casefold().translate(_LETTERS))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NOT_WORD.sub("_", bare).strip("_")


@dataclass(frozen=True)
class LedgerOptions:
    """Upload options: decimal separator and a `{"field": "Header in the file"}` map."""

    decimal_separator: str | None = None  # None: detected from the file's amounts
    column_map: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.decimal_separator is not None and self.decimal_separator not in DECIMAL_SEPARATORS:
            raise InvalidLedgerOptions(
                f"decimal_separator must be '.' or ',', got {self.decimal_separator!r}"
            )
        unknown = sorted(k for k in self.column_map if k not in FIELD_ALIASES)
        if unknown:
            raise InvalidLedgerOptions(
                f"column_map names unknown fields: {', '.join(unknown)} "
                f"(known: {', '.join(FIELDS)})"
            )
        for name, header in self.column_map.items():
            if not isinstance(header, str) or not header.strip():
                raise InvalidLedgerOptions(f"column_map[{name!r}] must be a non-empty header name")
        # Freeze a private copy so the options cannot change under a layout built from them.
        object.__setattr__(self, "column_map", MappingProxyType(dict(self.column_map)))


@dataclass(frozen=True)
class ColumnRef:
    """Where a field lives in the file: 0-based column index and the header text."""

    field: str
    index: int
    header: str


@dataclass(frozen=True)
class LedgerLayout:
    """Everything the reader needs to stream a validated ledger file."""

    kind: LedgerKind
    encoding: str | None  # "utf-8", "utf-8-sig" or "cp1252"; None for XLSX
    delimiter: str | None  # None for XLSX
    header: tuple[str, ...]
    columns: tuple[ColumnRef, ...]
    amount_mode: AmountMode
    decimal_separator: str | None = None  # None: to be detected from the amounts
    # The separator was detected (a file read again once its amounts showed ",").
    decimal_separator_detected: bool = False

    @property
    def has_document_type(self) -> bool:
        """Whether the optional document_type column is present."""
        return self.column("document_type") is not None

    @property
    def fields(self) -> tuple[str, ...]:
        """The resolved fields, in table order."""
        return tuple(c.field for c in self.columns)

    def column(self, name: str) -> ColumnRef | None:
        """The column of a field, or None when the file lacks it."""
        return next((c for c in self.columns if c.field == name), None)


def resolve_columns(
    header: Sequence[str], options: LedgerOptions
) -> tuple[tuple[ColumnRef, ...], AmountMode]:
    """Map fields to header columns (aliases, then column_map overrides) or raise."""
    positions: dict[str, int] = {}
    for position, name in enumerate(header):
        positions.setdefault(fold_header(name), position)  # first of duplicate headers wins

    found: dict[str, int] = {}
    for name, wanted in options.column_map.items():
        index = positions.get(fold_header(wanted))
        if index is None:
            raise InvalidLedgerOptions(
                f"column_map[{name!r}] names header {wanted!r}, which is not in the file; "
                f"header found: {', '.join(repr(h) for h in header)}"
            )
        found[name] = index
    claimed = set(found.values())
    for name, aliases in FIELD_ALIASES.items():
        if name in found:
            continue
        for alias in (name, *aliases):
            index = positions.get(alias)
            # A header mapped explicitly to one field is not also taken by another field's alias.
            if index is not None and index not in claimed:
                found[name] = index
                claimed.add(index)
                break

    mode = _amount_mode(found, options)
    missing = [f for f in KEY_FIELDS if f not in found]
    if mode is None:
        missing += [f for f in ("debit", "credit") if f not in found]
    if missing:
        raise LedgerFormatError(missing, list(header))
    assert mode is not None
    ignored = {"amount"} if mode is AmountMode.DEBIT_CREDIT else {"debit", "credit"}
    columns = tuple(
        ColumnRef(f, found[f], header[found[f]]) for f in FIELDS if f in found and f not in ignored
    )
    return columns, mode


def _amount_mode(found: Mapping[str, int], options: LedgerOptions) -> AmountMode | None:
    has_pair = "debit" in found and "credit" in found
    mapped = options.column_map
    amount_forced = "amount" in mapped and "debit" not in mapped and "credit" not in mapped
    if has_pair and not ("amount" in found and amount_forced):
        return AmountMode.DEBIT_CREDIT
    if "amount" in found:
        return AmountMode.SIGNED_AMOUNT
    return None
