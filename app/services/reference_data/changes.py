"""Changes to a client's reference data (SPEC §6): bulk bodies read as entries (CSV with its
header aliases), validated and normalised, then compared with the stored rows to plan the
upsert and name its reprocessing trigger (SPEC §5). Pure: no database."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from app.domain.errors import InvalidInput
from app.domain.ledger.records import scan
from app.domain.ledger.sniff import detect_delimiter

MAX_ITEMS = 20_000
# A reference-data row is a code, a name, an English name and a classification: far below this.
MAX_RECORD_CHARS = 64 * 1024
# Members of one JSON item: the model's fields and room to name a few unknown ones.
MAX_JSON_MEMBERS = 16
_DECODE_PIECE = 1024 * 1024
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


# A JSON array item, matched without backtracking (possessive quantifiers): an object of at most
# MAX_JSON_MEMBERS members whose values are strings or scalar literals (which the item's model
# then validates); anything nested is not an item of a reference-data body.
_JSON_STRING = rb'"(?:[^"\\]++|\\.)*+"'
_JSON_MEMBER = rb"%s\s*+:\s*+(?:%s|[^\s{}\[\]:,\"]++)" % (_JSON_STRING, _JSON_STRING)
_JSON_ITEM = re.compile(
    rb"\{\s*+(?:%s\s*+(?:,\s*+%s\s*+){0,%d}+)?\}"
    % (_JSON_MEMBER, _JSON_MEMBER, MAX_JSON_MEMBERS - 1),
    re.S,
)
_JSON_SEPARATOR = re.compile(rb"\s*+([,\]])\s*+")
_JSON_SPACE = re.compile(rb"\s*+")
_JSON_SHAPE = f"a JSON object of at most {MAX_JSON_MEMBERS} members whose values are text or null"


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


def _text_lines(body: bytes) -> Iterator[str]:
    """The body's lines, decoded one at a time (UTF-8 with or without BOM, else Windows-1252),
    each cut at MAX_RECORD_CHARS + 1 characters so no line is ever held longer than that."""
    if b"\x00" in body:
        raise InvalidInput(
            "The CSV body has NUL bytes: it is binary or UTF-16; send UTF-8 or Windows-1252 text"
        )
    stream = io.TextIOWrapper(io.BytesIO(body), encoding=_encoding(body), newline="")
    try:
        while line := stream.readline(MAX_RECORD_CHARS + 1):
            yield line
    except UnicodeDecodeError:
        raise InvalidInput("The CSV body is neither UTF-8 nor Windows-1252 text") from None


def _encoding(body: bytes) -> str:
    """utf-8-sig when the whole body is UTF-8 (checked piecewise: no copy of it as text)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    try:
        for start in range(0, len(body), _DECODE_PIECE):
            decoder.decode(view[start : start + _DECODE_PIECE])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8-sig"  # also reads UTF-8 without a BOM


class _Records:
    """Lines for csv.reader, refusing a record (one or more lines) over MAX_RECORD_CHARS."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.record = 1  # the header is line 1
        self._chars = 0
        self._current: list[str] = []  # the lines of the record being read
        self.last: list[str] = []  # the lines of the record the reader returned last

    def __iter__(self) -> _Records:
        return self

    def next_record(self) -> None:
        """The reader has returned the current record: count the next one's characters."""
        self.record += 1
        self._chars = 0
        self.last, self._current = self._current, []

    def __next__(self) -> str:
        line = next(self._lines)
        self._chars += len(line)
        if self._chars > MAX_RECORD_CHARS:
            raise InvalidInput(
                f"line {self.record} of the CSV body is longer than {MAX_RECORD_CHARS} characters"
            )
        self._current.append(line)
        return line


def _refuse_unclosed_quote(record: list[str], delimiter: str, where: str) -> None:
    """The csv module reads a quoted field never closed as the rest of the body: refused, as in a
    ledger. Only the last record can hold one; it is at most MAX_RECORD_CHARS long."""
    if scan("".join(record).encode(), ord(delimiter)).open_at_end:
        raise InvalidInput(
            f"{where} of the CSV body opens a quoted field that is never closed (its opening "
            'double quote has no closing one). A quote inside a quoted field is doubled: "5"" PVC"'
        )


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
    """CSV rows as entries; `line` counts records with the header as line 1; blank rows skipped.

    Read record by record: past MAX_ITEMS rows it stops, and a record is never longer than
    MAX_RECORD_CHARS, so what it holds is bounded whatever the body's shape."""
    lines = _Records(_text_lines(body))
    first = next(lines, "")
    if not first.strip() and not any(line.strip() for line in lines):
        raise InvalidInput("The CSV body is empty: a header line is required")
    delimiter = detect_delimiter(first)
    reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter)
    entries: list[Entry] = []
    try:
        columns = _resolve_columns(next(reader), aliases, column_map or {})
        where = "line 1"
        lines.next_record()
        for record in reader:
            where = f"line {lines.record}"
            lines.next_record()
            if not any(cell.strip() for cell in record):
                continue
            if len(entries) == MAX_ITEMS:
                raise InvalidInput(_too_many(f"more than {MAX_ITEMS}"))
            values = {f: record[i].strip() if i < len(record) else "" for f, i in columns.items()}
            entries.append(Entry(where, values))
        _refuse_unclosed_quote(lines.last, delimiter, where)
    except csv.Error as exc:
        raise InvalidInput(f"The CSV body cannot be read: {exc}") from None
    return entries


def json_items(body: bytes) -> Iterator[bytes]:
    """The items of a JSON array of flat objects (members whose values are text, numbers,
    booleans or null), one at a time: the body is never parsed whole, and past MAX_ITEMS
    items, or at an item of another shape, it stops with InvalidInput."""
    position = _after_space(body, 0)
    if body[position : position + 1] != b"[":
        raise InvalidInput(f"The body must be a JSON array, each item {_JSON_SHAPE}")
    position = _after_space(body, position + 1)
    if body[position : position + 1] == b"]":
        position += 1
    else:
        for index in itertools.count():
            item = _JSON_ITEM.match(body, position)
            if item is None:
                raise InvalidInput(f"item {index} of the body is not {_JSON_SHAPE}")
            if index == MAX_ITEMS:
                raise InvalidInput(_too_many(f"more than {MAX_ITEMS}"))
            yield item.group()
            separator = _JSON_SEPARATOR.match(body, item.end())
            if separator is None:
                raise InvalidInput(f"item {index} of the body is not followed by `,` or `]`")
            position = separator.end()
            if separator.group(1) == b"]":
                break
    if _after_space(body, position) != len(body):
        raise InvalidInput("The body goes on after its JSON array")


def _after_space(body: bytes, position: int) -> int:
    space = _JSON_SPACE.match(body, position)
    assert space is not None  # it matches the empty string
    return space.end()


def _too_many(count: str) -> str:
    return f"Too many rows: {count} (at most {MAX_ITEMS} per request)"


def normalise(
    entries: Sequence[Entry], *, optional: Sequence[str] = (), upper_codes: bool = False
) -> dict[str, dict[str, str | None]]:
    """Validated rows keyed by normalised code; every problem is reported in one InvalidInput."""
    if len(entries) > MAX_ITEMS:
        raise InvalidInput(_too_many(str(len(entries))))
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
