"""The parts of an XLSX workbook the ledger reader needs, streamed from the zip archive: which
part is the first sheet, the number format of each cell style, the date system, the shared
strings, and the sheet's XML in pieces of whole rows.

The XML is matched with regular expressions (Polars', in Rust), not built into a tree: a sheet
is streamed in bounded pieces, and every cell is handled by vectorised expressions. The
patterns accept what OOXML writers produce: namespace prefixes (`<x:c>`), either quote in
attributes, self-closing elements, and entities.
"""

from __future__ import annotations

import html
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO

import polars as pl

from app.domain.errors import PayloadTooLarge, UnsupportedLedgerFile
from app.domain.ledger.format import MAX_COLUMNS, MAX_RECORD_BYTES, MAX_XLSX_CELLS, MAX_XLSX_ROWS

_NS = r"(?:[\w.-]+:)?"  # an optional namespace prefix
_ATTR = r"""\s{name}\s*=\s*(?:"([^"]*)"|'([^']*)')"""
PIECE_CHARS = 4 * 1024 * 1024  # XML read at a time
# Cells located at a time: locating costs a few hundred bytes a cell whatever its size, so a
# piece of tiny cells (`<c/>`, 4 bytes) is cut by their count, not by its characters.
PIECE_CELLS = 64 * 1024
# Small reads: a piece overshoots PIECE_CELLS by at most one read's cells.
_READ_BYTES = 256 * 1024
_ROW_END = re.compile(rb"</(?:[\w.-]+:)?row\s*>|<(?:[\w.-]+:)?row\b[^>]*/>")
_SI_END = re.compile(rb"</(?:[\w.-]+:)?si\s*>|<(?:[\w.-]+:)?si\s*/>")
_SHEET = re.compile(rf"<{_NS}sheet\b[^>]*>")
_SHEET_DATA = re.compile(rb"<((?:[\w.-]+:)?)sheetData\b")
_RELATIONSHIP = re.compile(r"<(?:[\w.-]+:)?Relationship\b[^>]*>")
_DATE1904 = re.compile(r"""date1904\s*=\s*["'](?:1|true)["']""")
_XF = re.compile(rf"<{_NS}xf\b[^>]*>")
_NUM_FMT = re.compile(rf"<{_NS}numFmt\b[^>]*>")
_CELL_XFS = re.compile(rf"(?s)<{_NS}cellXfs\b.*?</{_NS}cellXfs>")
# Built-in number formats that show a date (14-17, 22, and the East Asian ones).
_BUILTIN_DATES = frozenset({14, 15, 16, 17, 22, *range(27, 37), *range(50, 59)})
# What a format shows besides its tokens: quoted text, escapes, fill/padding, [colours].
_FORMAT_LITERALS = re.compile(r'"[^"]*"|\\.|[_*].|\[[^\]]*\]')


def attribute(tag: str, name: str) -> str | None:
    """An attribute of one tag's text (either quote)."""
    found = re.search(_ATTR.format(name=re.escape(name)), tag)
    if found is None:
        return None
    return html.unescape(found.group(1) if found.group(1) is not None else found.group(2))


@dataclass(frozen=True)
class CellStyles:
    """Per cell style index (the `s` attribute): shows a date, or pads integers with zeros."""

    dates: frozenset[int]
    padding: MappingProxyType[int, int]  # style → digits (the format `000000` pads to 6)


class Workbook:
    """An open XLSX file: its first sheet, styles and shared strings."""

    def __init__(self, path: Path) -> None:
        try:
            self._zip = zipfile.ZipFile(path)
            names = set(self._zip.namelist())
            workbook = self._text("xl/workbook.xml")
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
            raise UnsupportedLedgerFile(
                f"The file is not a readable XLSX workbook: {exc}"
            ) from None
        targets = self._relationships("xl/_rels/workbook.xml.rels")
        first = _SHEET.search(workbook)
        rel = attribute(first.group(0), "r:id") if first else None
        self.sheet = _part(targets.get(rel or "", ("", ""))[1], names)
        if self.sheet is None:
            raise UnsupportedLedgerFile("The XLSX workbook has no sheets")
        by_type = {kind.rsplit("/", 1)[-1]: target for kind, target in targets.values()}
        self.shared_strings_part = _part(by_type.get("sharedStrings", ""), names)
        self.date1904 = bool(_DATE1904.search(workbook))
        styles = _part(by_type.get("styles", ""), names)
        self.styles = _styles(self._text(styles)) if styles else CellStyles(frozenset(), _NO_PAD)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def sheet_pieces(self) -> Iterator[str]:
        """The first sheet's XML in pieces of whole rows (the first piece also holds what comes
        before the rows, the last what comes after)."""
        assert self.sheet is not None
        yield from self._pieces(self.sheet, _ROW_END, _CellCount())

    def check_bounds(self) -> None:
        """Refuse a sheet whose cells reach past the bounds (limits.py), from a light pass over
        its XML (bytes, no cells built): the cell count, and references of 3+ letters or 7+
        digits, which only far cells have. Cells without a reference are bounded as they are
        read (xlsx.py)."""
        assert self.sheet is not None
        cells = 0
        tail = b""
        with self._zip.open(self.sheet) as stream:
            while data := _read(stream):
                chunk = tail + data
                cells += sum(chunk.count(tag) for tag in _CELL_TAGS) - sum(
                    tail.count(tag) for tag in _CELL_TAGS
                )
                for far in _FAR_REFERENCE.finditer(chunk):
                    letters, row = far.group(1).upper(), int(far.group(2))
                    column = 0
                    for letter in letters.decode():
                        column = column * 26 + ord(letter) - 64
                    if column > MAX_COLUMNS or row > MAX_XLSX_ROWS:
                        raise PayloadTooLarge(
                            f"The sheet has a cell {far.group(1).decode()}{row}: past column "
                            f"{MAX_COLUMNS} or row {MAX_XLSX_ROWS}, the most a ledger may have"
                        )
                tail = chunk[-64:]
        if cells > MAX_XLSX_CELLS:
            raise PayloadTooLarge(f"The sheet has {cells} cells, more than {MAX_XLSX_CELLS}")

    def shared_string_pieces(self) -> Iterator[pl.Series]:
        """The shared strings table, a piece at a time."""
        if self.shared_strings_part is None:
            return
        for piece in self._pieces(self.shared_strings_part, _SI_END):
            items = pl.Series("xml", [piece]).str.extract_all(_SI).explode().drop_nulls()
            yield rich_text(items).rename("text")

    def _pieces(
        self, part: str, end: re.Pattern[bytes], cells: _CellCount | None = None
    ) -> Iterator[str]:
        """Text of a part in pieces cut after `end`: pieces of about PIECE_CHARS, or of about
        PIECE_CELLS cells when `cells` counts them (a sheet: then the XML before an `end` may
        hold no more cells than a row may have)."""
        pending = bytearray()
        held = 0  # cells in `pending`
        with self._zip.open(part) as stream:
            while data := _read(stream):
                pending += data
                held += cells.count(pending, len(data)) if cells else 0
                if len(pending) < PIECE_CHARS and held < PIECE_CELLS:
                    continue
                cut = _last_end(pending, end)
                if cut == 0:
                    if len(pending) > MAX_RECORD_BYTES:
                        raise PayloadTooLarge(
                            f"An element of {part} is longer than {MAX_RECORD_BYTES} bytes"
                        )
                    if held > MAX_COLUMNS:
                        raise PayloadTooLarge(
                            f"A row of the sheet has more than {MAX_COLUMNS} cells, the most a "
                            "ledger may have"
                        )
                    continue
                yield _decode(bytes(pending[:cut]))
                del pending[:cut]
                held = cells.count(pending, len(pending)) if cells else 0
        if pending:
            yield _decode(bytes(pending))

    def _text(self, part: str) -> str:
        with self._zip.open(part) as stream:
            return _decode(b"".join(iter(lambda: _read(stream), b"")))

    def _relationships(self, part: str) -> dict[str, tuple[str, str]]:
        """Id → (Type, Target as a part name) of a relationships part."""
        try:
            text = self._text(part)
        except KeyError:
            return {}
        found = {}
        for tag in _RELATIONSHIP.findall(text):
            target = attribute(tag, "Target") or ""
            target = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            found[attribute(tag, "Id") or ""] = (attribute(tag, "Type") or "", target)
        return found


class _CellCount:
    """Counts the cells of a sheet's XML as it is read: the `<c` tags (with the namespace
    prefix of `<sheetData>`) that sheet.py splits the XML at, from `<sheetData>` on."""

    def __init__(self) -> None:
        self._tag: bytes | None = None

    def count(self, pending: bytearray, new: int) -> int:
        """Cells in the last `new` bytes of `pending` (a tag cut between two reads is missed:
        the count bounds memory, it need not be exact)."""
        start = len(pending) - new
        if self._tag is None:
            start = max(0, start - 64)  # `<sheetData` may be cut between two reads
            found = _SHEET_DATA.search(pending, start)
            if found is None:
                return 0
            self._tag, start = b"<" + found.group(1) + b"c", found.end()
        return pending.count(self._tag, start)


_NO_PAD: MappingProxyType[int, int] = MappingProxyType({})
# Cell start tags, with the namespace prefixes writers use (a tag split across reads is counted
# by the overlap kept between them).
_CELL_TAGS = tuple(
    f"<{prefix}c{end}".encode() for prefix in ("", "x:", "s:") for end in (" ", ">", "/>")
)
_FAR_REFERENCE = re.compile(rb"""\sr\s*=\s*["']([A-Za-z]{3,}|[A-Za-z]*(?=\d{7}))(\d+)["']""")
_SI = rf"(?s)<{_NS}si\b[^>]*?(?:/>|>.*?</{_NS}si\s*>)"
_PHONETIC = rf"(?s)<{_NS}rPh\b.*?</{_NS}rPh\s*>"
_TEXT_RUN = rf"(?s)<{_NS}t\b[^>]*?(?:/>|>.*?</{_NS}t\s*>)"
_ONE_RUN = rf"^<{_NS}t(?:\s[^>]*)?>([^<]*)</{_NS}t>$"
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))
# OOXML writes characters XML cannot hold as _xHHHH_.
_OOXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def rich_text(xml: pl.Series) -> pl.Series:
    """The text of string items (`<si>`, `<is>`): their text runs, phonetic hints left out.
    Most items are one plain run, read at once; the others run by run."""
    text = xml.str.extract(_ONE_RUN)
    rich = (text.is_null() & xml.is_not_null()).fill_null(False)
    if rich.any():
        items = xml.filter(rich).str.replace_all(_PHONETIC, "").str.extract_all(_TEXT_RUN)
        runs = items.list.eval(pl.element().str.replace_all(r"<[^>]*>", "")).list.join("")
        text = text.scatter(rich.arg_true(), runs)
    return unescape(text)


def unescape(text: pl.Series) -> pl.Series:
    """XML text with its entities (and OOXML escapes) decoded. Named entities are replaced in
    bulk; the rare values with a numeric reference or an escape go through Python."""
    rare = text.str.contains(r"&#|_x[0-9A-Fa-f]{4}_").fill_null(False)
    decoded = text
    if text.str.contains("&", literal=True).any():
        for entity, char in _ENTITIES:
            decoded = decoded.str.replace_all(entity, char, literal=True)
    if rare.any():
        rows = rare.arg_true()
        values = [_decode_rare(value) for value in text.gather(rows).to_list()]
        decoded = decoded.scatter(rows, pl.Series(values, dtype=pl.String))
    return decoded


def _decode_rare(text: str) -> str:
    return html.unescape(_OOXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))


def _styles(text: str) -> CellStyles:
    formats = {
        int(attribute(tag, "numFmtId") or -1): attribute(tag, "formatCode") or ""
        for tag in _NUM_FMT.findall(text)
    }
    cell_xfs = _CELL_XFS.search(text)
    dates: set[int] = set()
    padding: dict[int, int] = {}
    for index, tag in enumerate(_XF.findall(cell_xfs.group(0)) if cell_xfs else ()):
        number_format = int(attribute(tag, "numFmtId") or 0)
        code = formats.get(number_format)
        if number_format in _BUILTIN_DATES or (code is not None and _shows_date(code)):
            dates.add(index)
        elif code is not None and (width := _zero_padding(code)):
            padding[index] = width
    return CellStyles(frozenset(dates), MappingProxyType(padding))


def _shows_date(code: str) -> bool:
    """A format showing a day or a year (a time alone is not a date)."""
    shown = _FORMAT_LITERALS.sub("", code.split(";", 1)[0]).lower()
    return "d" in shown or "y" in shown


def _zero_padding(code: str) -> int:
    """Digits a format pads integers to: `000000` → 6 (0 for anything else)."""
    shown = _FORMAT_LITERALS.sub("", code.split(";", 1)[0])
    return len(shown) if len(shown) > 1 and set(shown) == {"0"} else 0


def _part(target: str, names: set[str]) -> str | None:
    """The zip member of a relationship target (member names are case-sensitive, Excel's
    targets sometimes are not)."""
    if target in names:
        return target
    folded = {name.lower(): name for name in names}
    return folded.get(target.lower())


def _last_end(data: bytes | bytearray, end: re.Pattern[bytes]) -> int:
    """Offset just past the last match of `end` (0 if none). Searched from the tail: the last
    megabyte holds one in any sane file, the whole buffer is searched otherwise."""
    for start in (max(0, len(data) - _READ_BYTES), 0):
        ends = [found.end() for found in end.finditer(data, start)]
        if ends:
            return ends[-1]
    return 0


def _read(stream: IO[bytes]) -> bytes:
    """The next bytes of a zip member; a damaged member is an unreadable upload, not a bug."""
    try:
        return stream.read(_READ_BYTES)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise UnsupportedLedgerFile(
            f"The XLSX workbook is damaged ({exc}): its parts do not match the sizes and "
            "checksums declared for them"
        ) from None


def _decode(data: bytes) -> str:
    """OOXML parts are UTF-8 (a UTF-16 part, allowed but unseen in practice, is decoded too)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8", errors="replace")
