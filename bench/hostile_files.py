"""Hostile ledger files (issue #16), built in code: XLSX range bombs and cell floods, wide and
ragged CSVs, long quoted fields, a wide file that is accepted, a ledger of more incidences
than MAX_INCIDENCES. Each case carries the answer it must get: the upload's status and detail,
and for an accepted file how its iteration ends.

`run_ledger_files` uploads them one by one to a running API with a worker behind it and
measures, per case, the API's peak RSS growth while it answers the upload, the worker's peak
RSS while it processes the file, and the seconds until the answer (or the iteration's end).
bench/hostile.py prints those figures; tests/chaos/test_hostile.py asserts them.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.hostile import (
    MAX_REFUSED_GROWTH_MIB,
    MAX_WORKER_PEAK_MIB,
    MIB,
    ledger,
    peak_growth,
    status_kib,
    wait_iteration,
)

# Generous: the 32 MiB quoted field took 75 s when the chunker was quadratic (now about 1 s).
MAX_FILE_SECONDS = 120
HEADER = "fecha,comprobante,cuenta,glosa,debe,haber"
ROW = "2026-10-01,V{n},1101,pago,{amount}"  # balanced in pairs: debit, then credit

# --- builders ------------------------------------------------------------------------------------


def movements(pairs: int) -> str:
    """`pairs` balanced vouchers of two movements on account 1101, one line each."""
    return "".join(
        f"{ROW.format(n=n, amount='10,0')}\n{ROW.format(n=n, amount='0,10')}\n"
        for n in range(pairs)
    )


def wide_header(columns: int) -> bytes:
    """A header of `columns` names (the ledger's six first) and one movement pair."""
    names = HEADER.split(",") + [f"extra{i}" for i in range(columns - 6)]
    return (",".join(names) + "\n" + movements(1)).encode()


def ragged_row(fields: int) -> bytes:
    """A normal ledger with one row of `fields` fields in the middle: more than the header."""
    wide = ROW.format(n="W", amount="5,0") + ",x" * (fields - 6)
    return f"{HEADER}\n{movements(2)}{wide}\n{movements(2)}".encode()


def long_quoted_field(size: int) -> bytes:
    """A description of `size` bytes of newlines, quoted, after the first rows (the upload's
    first-rows check sees nothing strange), then a few more rows."""
    field = '"' + "\n" * size + '"'
    long_row = f"2026-10-02,VL,1101,{field},7,0\n2026-10-02,VL,1101,x,0,7\n"
    return f"{HEADER}\n{movements(500)}{long_row}{movements(500)}".encode()


def wide_accepted(columns: int, size: int) -> bytes:
    """`columns` columns (the ledger's first, then fillers), rows up to about `size` bytes."""
    fillers = "," + ",".join(f"{i % 10}" for i in range(columns - 6))
    header = HEADER + "," + ",".join(f"extra{i}" for i in range(columns - 6)) + "\n"
    rows = [header]
    n, total = 0, len(header)
    while total < size:
        line = ROW.format(n=n // 2, amount="10,0" if n % 2 == 0 else "0,10") + fillers + "\n"
        rows.append(line)
        n, total = n + 1, total + len(line)
    return "".join(rows).encode()


# XLSX: the smallest package the reader (and a spreadsheet program) opens, sheet XML streamed
# into the archive so that a huge sheet never exists in memory uncompressed.
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_PARTS = {
    "[Content_Types].xml": (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/'
        'sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
        'worksheet+xml"/></Types>'
    ),
    "_rels/.rels": (
        f'<Relationships xmlns="{_PACKAGE_REL}"><Relationship Id="rId1" Type="{_REL}/'
        'officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets>'
        '<sheet name="Ledger" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<Relationships xmlns="{_PACKAGE_REL}"><Relationship Id="rId1" Type="{_REL}/'
        'worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
    ),
}


def _cell(ref: str, value: str | int) -> str:
    if isinstance(value, int):
        return f'<c r="{ref}"><v>{value}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'


def sheet_rows(pairs: int, first: int = 2) -> Iterator[str]:
    """The header row, then `pairs` balanced vouchers from row `first` (a row each)."""
    if first == 2:
        yield (
            '<row r="1">'
            + "".join(
                _cell(f"{col}1", name)
                for col, name in zip("ABCDEF", HEADER.split(","), strict=True)
            )
            + "</row>"
        )
    for n in range(pairs * 2):
        row = first + n
        values = ("2026-10-01", f"V{n // 2}", 1101, "pago", 10 if n % 2 == 0 else 0)
        cells = [_cell(f"{col}{row}", v) for col, v in zip("ABCDE", values, strict=True)]
        cells.append(_cell(f"F{row}", 0 if n % 2 == 0 else 10))
        yield f'<row r="{row}">{"".join(cells)}</row>'


def workbook(rows: Iterator[str], dimension: str = "") -> bytes:
    """An XLSX of one sheet holding `rows` (XML, streamed into the archive)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in _PARTS.items():
            archive.writestr(name, xml)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(f'<worksheet xmlns="{_MAIN}">'.encode())
            if dimension:
                sheet.write(f'<dimension ref="{dimension}"/>'.encode())
            sheet.write(b"<sheetData>")
            for row in rows:
                sheet.write(row.encode())
            sheet.write(b"</sheetData></worksheet>")
    return out.getvalue()


def _then(rows: Iterator[str], *more: str) -> Iterator[str]:
    yield from rows
    yield from more


def empty_cells(count: int, per_row: int = 1_000) -> Iterator[str]:
    """`count` empty cells without references (`<c/>`, the smallest a cell can be), in rows of
    `per_row` after the movements, in strings of about a megabyte."""
    row = "<row>" + "<c/>" * per_row + "</row>"
    block = row * max(1, MIB // len(row))
    for _ in range(count // per_row // (MIB // len(row))):
        yield block


# --- the cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerFile:
    """A ledger upload and the answer it must get: the upload's status and a piece of its
    detail; for an accepted upload (202), how the iteration ends: its status, error type and a
    piece of its detail, or an incidence key the snapshot holds."""

    name: str
    filename: str
    content: Callable[[], bytes]
    expect: int
    detail: str = ""  # in the refusal's detail, or the failed iteration's
    outcome: str = "succeeded"
    error_type: str | None = None
    incidence: str | None = None


LEDGER_FILES = [
    LedgerFile("40 MB CSV of 1M movements", "big.csv", lambda: ledger(1_000_000, "3.00", 2_000),
               202),
    LedgerFile("XLSX declaring A1:XFD1048576", "dim.xlsx",
               lambda: workbook(sheet_rows(2), "A1:XFD1048576"), 202),
    LedgerFile("XLSX range bomb: a cell at XFD1048576", "bomb.xlsx",
               lambda: workbook(_then(sheet_rows(2), '<row r="1048576">'
                                      + _cell("XFD1048576", 1) + "</row>")),
               413, "cell XFD1048576: past column 1000"),
    LedgerFile("XLSX of 60M empty cells", "cells.xlsx",
               lambda: workbook(_then(sheet_rows(2), *empty_cells(60_000_000))),
               413, "inflates to"),
    LedgerFile("XLSX, 2,000 cells in a row past the first piece", "late.xlsx",
               lambda: workbook(_then(sheet_rows(40_000), "<row>" + "<c/>" * 2000 + "</row>")),
               202, "past column 1000", "failed", "/problems/iteration-failed"),
    LedgerFile("CSV of 50,000 header columns", "cols.csv", lambda: wide_header(50_000), 413,
               "50000 columns, more than 1000"),
    LedgerFile("CSV row of 50,000 fields", "ragged.csv", lambda: ragged_row(50_000), 202,
               incidence="ROW_INVALID:fields"),
    LedgerFile("CSV quoted field of 32 MiB of newlines", "quoted.csv",
               lambda: long_quoted_field(32 * MIB), 413, "Line 1002: a record goes on"),
    LedgerFile("CSV quoted field of 15 MiB of newlines", "quoted15.csv",
               lambda: long_quoted_field(15 * MIB), 202),
    LedgerFile("60 MB CSV of 1,000 columns", "wide.csv", lambda: wide_accepted(1_000, 60 * MIB),
               202),
    LedgerFile("CSV of 300,000 unknown accounts", "many.csv", lambda: ledger(300_000, "1.00"),
               202, "MAX_INCIDENCES", "failed", "/problems/too-many-incidences"),
]  # fmt: skip


# --- running them --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileResult:
    """What one case got, and what it cost."""

    case: LedgerFile
    size: int  # bytes uploaded
    status: int  # of the upload
    detail: str  # the refusal's, or the failed iteration's
    iteration: dict[str, Any] | None  # once finished, for an accepted upload
    incidences: list[str]  # the snapshot's keys (succeeded iterations)
    api_growth_mib: float
    worker_start_mib: float  # the worker's RSS when the upload starts
    worker_peak_mib: float
    seconds: float  # upload to answer, or to the iteration's end

    def problems(self) -> list[str]:
        """How the answer differs from the case's (empty: as expected)."""
        case, found = self.case, []
        if self.status != case.expect:
            found.append(f"status {self.status}, expected {case.expect}")
        if case.detail not in self.detail:
            found.append(f"detail {self.detail!r} lacks {case.detail!r}")
        if self.iteration is not None:
            if self.iteration["status"] != case.outcome:
                found.append(f"iteration {self.iteration['status']}, expected {case.outcome}")
            error_type = (self.iteration["error"] or {}).get("type")
            if error_type != case.error_type:
                found.append(f"error type {error_type}, expected {case.error_type}")
        if case.incidence is not None and case.incidence not in self.incidences:
            found.append(f"no incidence {case.incidence}")
        return found


def run_ledger_files(
    base: str, key: str, client: str, api_pid: int, worker_pid: int, year: int = 2027
) -> list[FileResult]:
    """Upload every case to its own closing of `client` (periods of `year`, one a month)."""
    with httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=300
    ) as http:
        results = []
        for month, case in enumerate(LEDGER_FILES, start=1):
            made = http.post(f"/clients/{client}/closings", json={"period": f"{year}-{month:02d}"})
            closing = made.raise_for_status().json()["id"]
            results.append(_upload(http, closing, case, api_pid, worker_pid))
    return results


def _upload(
    http: httpx.Client, closing: str, case: LedgerFile, api_pid: int, worker_pid: int
) -> FileResult:
    files = {"file": (case.filename, case.content())}
    size = len(files["file"][1])
    Path(f"/proc/{worker_pid}/clear_refs").write_text("5")  # its peak from here on
    start = status_kib(worker_pid, "VmRSS") / 1024
    started = time.perf_counter()
    answer, growth = peak_growth(
        api_pid, lambda: http.post(f"/closings/{closing}/ledger", files=files)
    )
    iteration, keys, detail = None, [], ""
    if answer.status_code == 202:
        iteration = wait_iteration(http, answer.headers["Location"].removeprefix("/api/v1"))
        detail = (iteration["error"] or {}).get("detail", "")
        if iteration["status"] == "succeeded":
            snapshot = http.get(f"/closings/{closing}/incidences", params={"limit": 100})
            keys = [incidence["key"] for incidence in snapshot.json()["incidences"]]
    elif answer.headers.get("content-type", "").startswith("application/problem+json"):
        detail = answer.json().get("detail", "")
    seconds = time.perf_counter() - started
    peak = status_kib(worker_pid, "VmHWM") / 1024
    return FileResult(
        case, size, answer.status_code, detail, iteration, keys, growth, start, peak, seconds
    )


def print_ledger_files(results: list[FileResult]) -> None:
    """One line per case: its answer, the API's growth, the worker's peak, the seconds."""
    print(
        f"\nledger files (API growth limit {MAX_REFUSED_GROWTH_MIB} MiB; worker RSS at the "
        f"upload → its peak, limit {MAX_WORKER_PEAK_MIB} MiB):"
    )
    for r in results:
        outcome = r.iteration["status"] if r.iteration else ""
        ok = "ok" if not r.problems() else "; ".join(r.problems())
        print(
            f"  {r.case.name:<48} {r.size / MIB:7.1f} MiB  {r.status} {outcome:<9} "
            f"API +{r.api_growth_mib:5.1f} MiB  worker {r.worker_start_mib:4.0f}→"
            f"{r.worker_peak_mib:4.0f} MiB  {r.seconds:6.1f} s  {ok}"
        )
        if r.detail:
            print(f"      {r.detail[:150]}")
