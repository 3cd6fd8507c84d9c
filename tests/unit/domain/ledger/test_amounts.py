"""Amount cells (SPEC §3) against a plain-Python reading of the same rules, whichever of
parse_amounts' paths (plain, thousands in groups, general) a value takes."""

from __future__ import annotations

import re
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.ledger.amounts import parse_amounts

_NOISE = re.compile(r"\s|US\$|\$|€|CLP|USD|EUR", re.IGNORECASE)
_SHAPE = re.compile(r"(\()?([+-])?([0-9.,]*)(-)?(\))?")


def _expected(text: str | None, separator: str) -> Decimal | None:
    """The rules as the SPEC states them, one value at a time."""
    if text is None:
        return Decimal(0)  # an empty cell
    shape = _SHAPE.fullmatch(_NOISE.sub("", text))
    if shape is None:
        return None
    opened, sign, number, trailing, closed = shape.groups()
    if (opened is None) != (closed is None) or sum(
        part is not None for part in (opened, sign, trailing)
    ) > 1:
        return None
    if number == "" and opened is None and (sign == "-") != (trailing is not None):
        return Decimal(0)  # a lone "-": the spreadsheet accounting format's zero
    thousands = "," if separator == "." else "."
    split = re.fullmatch(rf"([0-9{thousands}]*)(?:\{separator}([0-9]*))?", number)
    if split is None:
        return None
    integer, fraction = split.group(1).replace(thousands, ""), split.group(2) or ""
    whole = integer.lstrip("0")
    if not integer + fraction or len(whole) > 18 or len(fraction) > 18:
        return None  # too long to be exact: rejected, never rounded
    value = Decimal(f"{whole or 0}.{fraction or 0}")
    # copy_negate is exact (unary minus rounds to the context's 28 digits)
    return value.copy_negate() if opened or sign == "-" or trailing else value


def _check(texts: list[str | None], separator: str) -> None:
    parsed = parse_amounts(pl.Series("text", texts, dtype=pl.String), separator).to_list()
    assert parsed == [_expected(text, separator) for text in texts]


# Spellings of grouped amounts: 1.234.567,89 / -1,234.5 / 000.001 / 19 digits ...
_grouped = st.builds(
    lambda sign, head, groups, fraction: (sign, head, groups, fraction),
    st.sampled_from(["", "-", "+"]),
    st.from_regex(r"[0-9]{1,4}", fullmatch=True),
    st.lists(st.from_regex(r"[0-9]{2,4}", fullmatch=True), max_size=7),
    st.one_of(st.none(), st.from_regex(r"[0-9]{0,20}", fullmatch=True)),
)


@settings(max_examples=300, deadline=None)
@given(
    spellings=st.lists(_grouped, min_size=1, max_size=30),
    separator=st.sampled_from([".", ","]),
)
def test_amounts_with_thousands_in_groups(
    spellings: list[tuple[str, str, list[str], str | None]], separator: str
) -> None:
    thousands = "," if separator == "." else "."
    texts = [
        sign + thousands.join([head, *groups]) + ("" if fraction is None else separator + fraction)
        for sign, head, groups, fraction in spellings
    ]
    _check(texts, separator)


@settings(max_examples=400, deadline=None)
@given(
    texts=st.lists(
        st.one_of(st.none(), st.text(alphabet="0123456789.,-+()$€ USDEURclp", max_size=14)),
        min_size=1,
        max_size=30,
    ),
    separator=st.sampled_from([".", ","]),
)
def test_any_amount_text(texts: list[str | None], separator: str) -> None:
    _check([t.strip() if t is not None else None for t in texts], separator)


@pytest.mark.parametrize(
    ("text", "separator", "expected"),
    [
        ("123.456.789.012.345.678", ",", Decimal("123456789012345678")),  # 18 digits
        ("1.234.567.890.123.456.789", ",", None),  # 19: rejected
        ("1,234.000000000000000001", ".", Decimal("1234.000000000000000001")),  # 18 places
        ("1,234.0000000000000000001", ".", None),  # 19
        ("-294.174,44", ",", Decimal("-294174.44")),
        ("(1,234.56)", ".", Decimal("-1234.56")),
        ("$ 1.234,56", ",", Decimal("1234.56")),
        ("1.234,56", ".", None),  # a comma after the decimal point
        ("1,23,456.78", ".", Decimal("123456.78")),  # groups of other sizes: the general path
    ],
)
def test_amount_bounds_and_spellings(text: str, separator: str, expected: Decimal | None) -> None:
    assert parse_amounts(pl.Series("text", [text]), separator).to_list() == [expected]
    assert _expected(text, separator) == expected
