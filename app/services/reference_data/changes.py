"""Changes to a client's reference data (SPEC §6): bulk bodies read as entries (CSV with its
header aliases), validated and normalised, then compared with the stored rows to plan the
upsert and name its reprocessing trigger (SPEC §5). Pure: no database."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.domain.errors import InvalidInput
from app.domain.ledger.sniff import detect_delimiter

MAX_ITEMS = 20_000
MAX_CODE_LENGTH = 100
MAX_TEXT_LENGTH = 500
_MAX_PROBLEMS_SHOWN = 20
_MAX_LENGTH = {"code": MAX_CODE_LENGTH}

# CSV header aliases per field, matched after trimming, lower-casing, dropping accents and
# turning spaces/hyphens into `_`. The first alias present in the header wins.
ACCOUNT_ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("code", "account_code", "account", "codigo_cuenta", "cuenta", "codigo"),
    "name": ("name", "account_name", "nombre_cuenta", "nombre"),
    "name_en": ("name_en", "english_name", "account_name_en", "nombre_en", "nombre_ingles"),
    "classification": ("classification", "account_classification", "clasificacion"),
}
DOCUMENT_TYPE_ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("code", "document_type", "doc_type", "tipo_documento", "tipo_doc", "codigo"),
    "name": ("name", "document_type_name", "description", "nombre", "descripcion"),
}


@dataclass(frozen=True)
class Entry:
    """One incoming row: where it came from (for error messages) and the fields it sets."""

    where: str
    values: Mapping[str, str | None]


@dataclass(frozen=True)
class Plan:
    """What an upsert changes: new codes, changed codes with their changed fields, rows to write."""

    created: list[str]
    changed: dict[str, frozenset[str]]
    rows: list[dict[str, str | None]]


def _header_key(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.strip().lower())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return "_".join(plain.replace("-", " ").split())


def _decode(body: bytes) -> str:
    if b"\x00" in body:
        raise InvalidInput(
            "The CSV body has NUL bytes: it is binary or UTF-16; send UTF-8 or Windows-1252 text"
        )
    for encoding in ("utf-8-sig", "cp1252"):  # utf-8-sig also reads UTF-8 without a BOM
        try:
            return body.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("The CSV body is neither UTF-8 nor Windows-1252 text")


def _resolve_columns(
    header: Sequence[str], aliases: Mapping[str, tuple[str, ...]], column_map: Mapping[str, str]
) -> dict[str, int]:
    """Field → column index; raises naming the missing required fields and the header found."""
    unknown = sorted(set(column_map) - set(aliases))
    if unknown:
        raise InvalidInput(f"column_map names unknown fields {unknown}; known: {list(aliases)}")
    keys = [_header_key(h) for h in header]
    columns: dict[str, int] = {}
    for field, names in aliases.items():
        wanted = [_header_key(column_map[field])] if field in column_map else names
        found = next((keys.index(name) for name in wanted if name in keys), None)
        if found is not None:
            columns[field] = found
    missing = [field for field in ("code", "name") if field not in columns]
    if missing:
        shown = ", ".join(repr(h) for h in header) or "(empty)"
        raise InvalidInput(
            f"The CSV lacks required columns: {', '.join(missing)}. Header found: {shown}"
        )
    return columns


def parse_csv(
    body: bytes,
    aliases: Mapping[str, tuple[str, ...]],
    column_map: Mapping[str, str] | None = None,
) -> list[Entry]:
    """CSV rows as entries; `line` counts records with the header as line 1; blank rows skipped."""
    text = _decode(body)
    if not text.strip():
        raise InvalidInput("The CSV body is empty: a header line is required")
    delimiter = detect_delimiter(text.split("\n", 1)[0])
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise InvalidInput(f"The CSV body cannot be read: {exc}") from None
    columns = _resolve_columns(records[0], aliases, column_map or {})
    entries = []
    for line, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        values = {f: record[i].strip() if i < len(record) else "" for f, i in columns.items()}
        entries.append(Entry(f"line {line}", values))
    return entries


def normalise(
    entries: Sequence[Entry], *, optional: Sequence[str] = (), upper_codes: bool = False
) -> dict[str, dict[str, str | None]]:
    """Validated rows keyed by normalised code; every problem is reported in one InvalidInput."""
    if len(entries) > MAX_ITEMS:
        raise InvalidInput(f"Too many rows: {len(entries)} (at most {MAX_ITEMS} per request)")
    problems: list[str] = []
    rows: dict[str, dict[str, str | None]] = {}
    seen: dict[str, list[str]] = {}
    for entry in entries:
        code = (entry.values.get("code") or "").strip()
        code = code.upper() if upper_codes else code
        name = (entry.values.get("name") or "").strip()
        row: dict[str, str | None] = {"code": code, "name": name}
        for field in optional:
            if field in entry.values:
                row[field] = (entry.values[field] or "").strip() or None
        for field, value in row.items():
            if field in ("code", "name") and not value:
                problems.append(f"{entry.where}: {field} is empty")
            elif value and "\x00" in value:  # Postgres text cannot hold it
                problems.append(f"{entry.where}: {field} contains a NUL character")
            elif value and len(value) > (limit := _MAX_LENGTH.get(field, MAX_TEXT_LENGTH)):
                problems.append(f"{entry.where}: {field} is longer than {limit} characters")
        if code:
            seen.setdefault(code, []).append(entry.where)
            rows[code] = row
    problems += [
        f"duplicate code {code!r} at {', '.join(where)}"
        for code, where in seen.items()
        if len(where) > 1
    ]
    if problems:
        more = len(problems) - _MAX_PROBLEMS_SHOWN
        shown = "; ".join(problems[:_MAX_PROBLEMS_SHOWN]) + (
            f"; and {more} more" if more > 0 else ""
        )
        raise InvalidInput(f"Invalid rows: {shown}")
    return rows


def plan_changes(
    existing: Mapping[str, Mapping[str, str | None]],
    incoming: Mapping[str, Mapping[str, str | None]],
    optional: Sequence[str] = (),
) -> Plan:
    """Compare the request with the stored rows; unchanged rows are neither created nor updated."""
    created: list[str] = []
    changed: dict[str, frozenset[str]] = {}
    rows: list[dict[str, str | None]] = []
    for code, row in incoming.items():
        before = existing.get(code)
        if before is None:
            created.append(code)
            rows.append({**dict.fromkeys(optional), **row})
            continue
        after = {**before, **row}
        fields = frozenset(f for f, value in after.items() if before.get(f) != value)
        if fields:
            changed[code] = fields
            rows.append(after)
    return Plan(created, changed, rows)


def accounts_trigger(plan: Plan) -> str | None:
    """The reprocessing trigger of a chart change (SPEC §5), or None when nothing changed."""
    if plan.created:
        return "accounts_updated"
    fields = frozenset().union(*plan.changed.values())
    if not fields:
        return None
    if fields == {"classification"}:
        return "classification_updated"
    if fields == {"name_en"}:
        return "english_names_updated"
    return "accounts_updated"
