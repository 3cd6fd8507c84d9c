"""Amount cells (SPEC §3): exact decimals, thousands noise, signs, and which decimal separator
a file uses when the upload does not say.

Amounts are `Decimal(38, 18)`: a cell is valid when, after removing its noise, it has at most
18 decimal places and 18 integer digits, so it is stored exactly; anything longer is rejected
(ROW_INVALID), never rounded. Totals stay exact below 1e20 (see `evaluation.check_totals_fit`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

AMOUNT_SCALE = 18
MAX_INTEGER_DIGITS = 18
AMOUNT_DTYPE = pl.Decimal(38, AMOUNT_SCALE)
DECIMAL_SEPARATORS: tuple[str, ...] = (".", ",")

# Thousands noise besides the other separator: spaces (any Unicode space, non-breaking ones
# included) and currency signs and codes.
_NOISE = r"(?i)\s|US\$|\$|€|CLP|USD|EUR"
# After the noise: an optional "(", a sign, the number, a trailing "-" and ")".
_SHAPE = r"^(\()?([+-])?([\d.,]*)(-)?(\))?$"
# Evidence of the decimal separator in the number part (digits and separators only): the last
# of two different separators is the decimal one; a separator that appears twice, or once
# without the 1-3 digits + 3 digits of a thousands group around it, says which is which.
_COMMA_DECIMAL = (
    r"^[\d.]*\.[\d.]*,\d*$"  # 1.234,56
    r"|^\d*\.\d*\.[\d.]*$"  # 1.234.567
    r"|^\d*,\d*$"  # 12,5 (unless a thousands group: checked apart)
)
_DOT_DECIMAL = r"^[\d,]*,[\d,]*\.\d*$|^\d*,\d*,[\d,]*$|^\d*\.\d*$"
_GROUP = r"^[1-9]\d{0,2}[.,]\d{3}$"  # 1.234 or 1,234: either reading fits


def plain_pattern(separator: str) -> str:
    """The common spelling (optional `-`, digits, separator, digits), cast without cleaning."""
    return rf"^-?\d{{1,{MAX_INTEGER_DIGITS}}}(\{separator}\d{{1,{AMOUNT_SCALE}}})?$"


def parse_amounts(text: pl.Series, separator: str) -> pl.Series:
    """Exact Decimals of trimmed amount texts: null/empty is 0, unparseable or too long is null."""
    value = pl.col("text")
    if separator != ".":
        value = value.str.replace(separator, ".", literal=True)
    plain = pl.col("text").str.contains(plain_pattern(separator))
    frame = text.to_frame("text").with_columns(plain=plain)
    # Fast path: empty cells and plain numbers, which are nearly all of them.
    parsed = frame.select(
        pl.when(pl.col("text").is_null())
        .then(pl.lit(0, AMOUNT_DTYPE))
        .when(pl.col("plain"))
        .then(value.cast(AMOUNT_DTYPE, strict=False))
    ).to_series()
    rest = frame.with_row_index("_row").filter(pl.col("text").is_not_null() & ~pl.col("plain"))
    if rest.height:
        slow = rest.select(_general_amount(pl.col("text"), separator)).to_series()
        parsed = parsed.scatter(rest["_row"], slow)
    return parsed


def _general_amount(raw: pl.Expr, separator: str) -> pl.Expr:
    """Amount with noise, a sign (leading or trailing `-`, parentheses) and thousands
    separators (only before the decimal one); a lone `-` is 0; null when not a number."""
    thousands = "," if separator == "." else "."
    parts = raw.str.replace_all(_NOISE, "").str.extract_groups(_SHAPE)
    opened, sign, number, trailing, closed = (parts.struct.field(str(n)) for n in range(1, 6))
    split = number.str.extract_groups(rf"^([\d{thousands}]*)(?:\{separator}(\d*))?$")
    integer = split.struct.field("1").str.replace_all(thousands, "", literal=True)
    fraction = split.struct.field("2").fill_null("")
    whole = integer.str.strip_chars_start("0")
    signs = (
        opened.is_not_null().cast(pl.Int8)
        + sign.is_not_null().cast(pl.Int8)
        + trailing.is_not_null().cast(pl.Int8)
    )
    shaped = number.is_not_null() & (opened.is_null() == closed.is_null()) & (signs <= 1)
    digits = integer.str.len_bytes() + fraction.str.len_bytes()
    well_formed = (
        shaped
        & integer.is_not_null()
        & (digits > 0)
        & (whole.str.len_bytes() <= MAX_INTEGER_DIGITS)
        & (fraction.str.len_bytes() <= AMOUNT_SCALE)
    )
    negative = opened.is_not_null() | (sign == "-") | trailing.is_not_null()
    canonical = pl.concat_str(
        [
            pl.when(negative).then(pl.lit("-")).otherwise(pl.lit("")),
            pl.when(whole == "").then(pl.lit("0")).otherwise(whole),
            pl.lit("."),
            pl.when(fraction == "").then(pl.lit("0")).otherwise(fraction),
        ]
    )
    # A lone "-" (spreadsheet accounting format, also as "$ -") is zero.
    dash = shaped & (number == "") & opened.is_null() & ((sign == "-") ^ trailing.is_not_null())
    return (
        pl.when(dash)
        .then(pl.lit(0, AMOUNT_DTYPE))
        .when(well_formed)
        .then(canonical.cast(AMOUNT_DTYPE, strict=False))
    )


@dataclass
class SeparatorEvidence:
    """Amount values of a file read so far that show which decimal separator it uses."""

    dot: int = 0
    comma: int = 0
    separated: int = 0  # values with a separator, evidence or not (1.234 reads either way)

    def add(self, texts: list[pl.Series]) -> None:
        """Count the evidence in these amount columns (trimmed texts)."""
        number = pl.col("text").str.replace_all(r"[^\d.,]", "")
        counted = (
            pl.concat([t.rename("text") for t in texts])
            .drop_nulls()
            .to_frame()
            .filter(pl.col("text").str.contains(r"[.,]"))
            .select(
                group=number.str.contains(_GROUP),
                comma=number.str.contains(_COMMA_DECIMAL),
                dot=number.str.contains(_DOT_DECIMAL),
            )
            .select(
                comma=(pl.col("comma") & ~pl.col("group")).sum(),
                dot=(pl.col("dot") & ~pl.col("group")).sum(),
                separated=pl.len(),
            )
            .row(0, named=True)
        )
        self.comma += counted["comma"] or 0
        self.dot += counted["dot"] or 0
        self.separated += counted["separated"] or 0

    @property
    def decided(self) -> str | None:
        """The separator the evidence shows (the majority), or None without evidence."""
        if not (self.dot or self.comma):
            return None
        return "," if self.comma > self.dot else "."
