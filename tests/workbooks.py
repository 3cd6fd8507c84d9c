"""Test workbooks written with xlsxwriter: a generic writer, and a ledger with the traits of
real spreadsheet exports (the public je_samples.xlsx, which carries no licence and so is not in
the repository): signed amounts with binary float noise, numeric account cells, date cells
(some with a time), zero-padded number formats, text codes, blank rows.

The ledger's expected movements are known by construction (the exact decimals each noisy float
stands for), never read back from the file.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import xlsxwriter

from tests.helpers import Account, Movement

Cell = str | int | float | bool | dt.date | dt.datetime | None


@dataclass(frozen=True)
class Formatted:
    """A cell written with a number format (`000000`, `yyyy-mm-dd`, ...)."""

    value: Cell
    num_format: str


def write_xlsx(path: Path, rows: Sequence[Sequence[Cell | Formatted] | None]) -> Path:
    """Write rows to the first sheet (None = a row left absent). Dates get a date format."""
    with xlsxwriter.Workbook(str(path)) as book:
        sheet = book.add_worksheet("Ledger")
        formats: dict[str, Any] = {}

        def fmt(code: str) -> Any:
            if code not in formats:
                formats[code] = book.add_format({"num_format": code})
            return formats[code]

        for r, row in enumerate(rows):
            for c, cell in enumerate(row or ()):
                value, code = (
                    (cell.value, cell.num_format)
                    if isinstance(cell, Formatted)
                    else (
                        cell,
                        None,
                    )
                )
                if value is None:
                    continue
                if isinstance(value, dt.datetime):
                    sheet.write_datetime(r, c, value, fmt(code or "yyyy-mm-dd hh:mm"))
                elif isinstance(value, dt.date):
                    sheet.write_datetime(r, c, value, fmt(code or "dd/mm/yyyy"))
                elif isinstance(value, str):
                    sheet.write_string(r, c, value)
                elif isinstance(value, bool):
                    sheet.write_boolean(r, c, value)
                elif code is not None:
                    sheet.write_number(r, c, value, fmt(code))
                else:
                    sheet.write_number(r, c, value)
    return path


def rewrite_sheet(path: Path, change: Callable[[str], str]) -> Path:
    """Rewrite the first sheet's XML of a workbook (to write what xlsxwriter does not: 17-digit
    floats as Excel writes them, namespace prefixes, cells without references...)."""
    copy = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = change(data.decode()).encode()
            out.writestr(item, data)
    shutil.move(copy, path)
    return path


# The public workbook's column names, which the service does not know: mapped with column_map.
JE_HEADER = [
    "JEEntryKey",
    "JENumber",
    "GLAccountNumber",
    "EffectiveDate",
    "JEDescription",
    "Debit",
    "Credit",
    "Amount",
    "GLAccountName",
    "AccountClass",
    "CostCenter",
]
JE_COLUMN_MAP = {
    "voucher": "JENumber",
    "account_code": "GLAccountNumber",
    "date": "EffectiveDate",
    "amount": "Amount",
    "description": "JEDescription",
    "account_name": "GLAccountName",
}
JE_PERIOD = "2015-06"
# Accounts: numeric cells (some shown zero-padded by their format), and text codes.
_ACCOUNTS = [
    (11845, None, "Cash - Operating", "Cash"),
    (43440, None, "Food Sales", "Revenue"),
    (51200, None, "Food Cost", "Expense"),
    (1234, "000000", "Petty Cash", "Cash"),  # shown 001234
    (2101, "000000", "Accounts Payable", "Liability"),  # shown 002101
    ("70300-FS", None, "Suspense", "Other"),
]
# Amounts whose float is binary noise of a 15-digit decimal: Excel writes the 17-digit form
# (xlsxwriter writes 16 digits, so the sheet is rewritten with them).
_NOISY = {
    "11518.2825": "11518.282500000001",
    "1221785.7025": "1221785.7025000001",
    "0.3": "0.30000000000000004",
}


@dataclass(frozen=True)
class JeLedger:
    path: Path
    movements: list[Movement]
    chart: dict[str, Account]  # every numeric account (as shown), not the text code


def je_like_workbook(path: Path, vouchers: int = 400, seed: int = 15) -> JeLedger:
    """A je_samples-like ledger: balanced vouchers of signed amounts, in and out of period."""
    rng = random.Random(seed)
    rows: list[Sequence[Cell | Formatted] | None] = [JE_HEADER]
    movements: list[Movement] = []
    noisy = list(_NOISY.items())
    for number in range(1, vouchers + 1):
        voucher = 20150000 + number
        month = rng.choice([6, 6, 6, 6, 5, 7])
        day = rng.randint(1, 28)
        date = dt.date(2015, month, day)
        # Every 7th voucher's date cell carries a time: its date part counts.
        when: dt.date = dt.datetime(2015, month, day, 13, 45) if number % 7 == 0 else date
        amounts: list[tuple[Decimal, float]] = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.3:
                text, written = rng.choice(noisy)
                amounts.append((Decimal(text), float(written)))
            else:
                cents = rng.randrange(100, 10_000_000)
                amounts.append((Decimal(cents) / 100, cents / 100))
        total = sum(a for a, _ in amounts)
        # The balancing credit is one cell: its float is the decimal total, no noise.
        sides = [*amounts, (-total, -float(total))]
        for exact, value in sides:
            code, pad, name, kind = rng.choice(_ACCOUNTS)
            shown = code if isinstance(code, str) else format(code, "06d" if pad else "d")
            account: Cell | Formatted = code
            if pad and isinstance(code, int):
                account = Formatted(code, pad)
            description = f"JE {voucher} {name}"
            rows.append(
                [
                    f"K{len(rows)}",
                    voucher,
                    account,
                    when,
                    description,
                    value if value > 0 else 0.0,
                    value if value < 0 else 0.0,
                    value,
                    name,
                    kind,
                    Formatted(rng.randrange(1, 99), "000"),
                ]
            )
            movements.append(
                Movement(
                    line=len(rows),
                    account_code=shown,
                    date=date,
                    voucher=str(voucher),
                    debit=exact if exact > 0 else Decimal(0),
                    credit=-exact if exact < 0 else Decimal(0),
                    description=description,
                    account_name=name,
                )
            )
        if number % 50 == 0:
            rows.append(None)  # an absent row: blank, still counted for line numbers
            rows.append(["", "   ", None])  # empty strings only: blank too
    write_xlsx(path, rows)
    rewrite_sheet(path, _with_noise)
    chart = {
        (format(code, "06d" if pad else "d")): Account(name, f"{name} (en)", kind)
        for code, pad, name, kind in _ACCOUNTS
        if isinstance(code, int)
    }
    return JeLedger(path, movements, chart)


def _with_noise(xml: str) -> str:
    for shown, written in _NOISY.items():
        for sign in ("", "-"):
            xml = xml.replace(f"<v>{sign}{shown}</v>", f"<v>{sign}{written}</v>")
    return xml
