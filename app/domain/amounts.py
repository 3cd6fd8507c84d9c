"""Canonical decimal strings for amounts in incidences, statistics and diffs."""

from __future__ import annotations

from decimal import Context, Decimal

# Python's default context rounds results to 28 digits; Decimal(38, 18) values need 38+.
EXACT = Context(prec=80)


def format_amount(value: Decimal | int | str) -> str:
    """Plain decimal text with at least 2 places, more only when needed: 1500000 → "1500000.00".

    The text depends only on the value (10.10 and 10.1 print alike), so equal totals always
    compare and hash equal across iterations, and no digit is ever rounded away.
    """
    # format(..., "f") is exact and context-free (normalize/quantize would round past 28 digits).
    text = format(value if isinstance(value, Decimal) else Decimal(value), "f")
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    if whole in ("-0", "-") and fraction.strip("0") == "":
        whole = "0"  # no "-0.00"
    return f"{whole or '0'}.{fraction}"


def parse_amount_text(value: str | Decimal | int) -> Decimal:
    """The Decimal of a canonical amount string (or a Decimal/int, passed through)."""
    return value if isinstance(value, Decimal) else Decimal(value)


def difference(a: Decimal, b: Decimal) -> Decimal:
    """a - b, exactly (no rounding to the default 28-digit context)."""
    return EXACT.subtract(a, b)
