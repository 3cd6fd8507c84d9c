"""Turning calamine cell values into the text the movement parser expects."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

# calamine yields these Python types for XLSX cells.
CellValue = int | float | str | bool | dt.time | dt.date | dt.datetime | dt.timedelta


def cell_text(value: CellValue | None) -> str | None:
    """Text of a cell as a person reads it: integral numbers lose `.0`, floats keep their repr."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, dt.datetime):  # before date: datetime is a date
        return value.isoformat(sep=" ") if value.time() != dt.time() else value.date().isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def date_cell_text(value: CellValue | None) -> str | None:
    """Text of a date cell: native dates (and datetimes, by their day) become YYYY-MM-DD."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    return cell_text(value)


def float_text(value: float) -> str:
    """Exact decimal text of a float via its shortest repr: 110105.0 → "110105", 12.5 → "12.5"."""
    if value.is_integer():
        return str(int(value))  # exact for every integral float, and no exponent notation
    return format(Decimal(repr(value)), "f")  # repr may use exponents (1e-05); "f" never does
