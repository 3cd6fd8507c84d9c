"""Minimal XLSX writer for tests (no openpyxl/xlsxwriter in the venv)."""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

Cell = str | int | float | dt.date | None

_EXCEL_EPOCH = dt.date(1899, 12, 30)

_OOXML = "http://schemas.openxmlformats.org"
_PKG = f"{_OOXML}/package/2006"
_DOC_REL = f"{_OOXML}/officeDocument/2006/relationships"
_SHEET_NS = f"{_OOXML}/spreadsheetml/2006/main"
_XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

_CONTENT_TYPES = (
    f'{_HEAD}<Types xmlns="{_PKG}/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_XLSX_MIME}.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    f'ContentType="{_XLSX_MIME}.worksheet+xml"/>'
    f'<Override PartName="/xl/styles.xml" ContentType="{_XLSX_MIME}.styles+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    f'{_HEAD}<Relationships xmlns="{_PKG}/relationships">'
    f'<Relationship Id="rId1" Type="{_DOC_REL}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK = (
    f'{_HEAD}<workbook xmlns="{_SHEET_NS}" xmlns:r="{_DOC_REL}">'
    '<sheets><sheet name="Ledger" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    f'{_HEAD}<Relationships xmlns="{_PKG}/relationships">'
    f'<Relationship Id="rId1" Type="{_DOC_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_DOC_REL}/styles" Target="styles.xml"/>'
    "</Relationships>"
)

# Style 0 = general, style 1 = built-in date format 14 (what Excel uses for typed dates).
_STYLES = f"""{_HEAD}<styleSheet xmlns="{_SHEET_NS}">
<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="1"><fill><patternFill patternType="none"/></fill></fills>
<borders count="1"><border/></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>
<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>
</styleSheet>"""


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _cell_xml(ref: str, value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        delta = value - dt.datetime.combine(_EXCEL_EPOCH, dt.time())
        return f'<c r="{ref}" s="1"><v>{delta.total_seconds() / 86400!r}</v></c>'
    if isinstance(value, dt.date):
        return f'<c r="{ref}" s="1"><v>{(value - _EXCEL_EPOCH).days}</v></c>'
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        return f'<c r="{ref}"><v>{value!r}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(value)}</t></is></c>'


def write_xlsx(path: Path, rows: Sequence[Sequence[Cell] | None]) -> Path:
    """Write rows (None = an absent row) to the first sheet of a new XLSX file."""
    body = []
    for r, row in enumerate(rows, start=1):
        if row is None:
            continue
        cells = "".join(_cell_xml(f"{_column_letter(c)}{r}", v) for c, v in enumerate(row))
        body.append(f'<row r="{r}">{cells}</row>')
    sheet = (
        f'{_HEAD}<worksheet xmlns="{_SHEET_NS}"><sheetData>{"".join(body)}</sheetData></worksheet>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES)
        zf.writestr("_rels/.rels", _ROOT_RELS)
        zf.writestr("xl/workbook.xml", _WORKBOOK)
        zf.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        zf.writestr("xl/styles.xml", _STYLES)
        zf.writestr("xl/worksheets/sheet1.xml", sheet)
    return path
