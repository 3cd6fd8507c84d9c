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
_SHAPE = r"^(?<opened>\()?(?<sign>[+-])?(?<number>[\d.,]*)(?<trailing>-)?(?<closed>\))?$"
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


def _grouped_pattern(separator: str) -> str:
    """The spelling with thousands in groups of three (`1.234.567,89` when the separator is
    `,`), cast once the thousands separators are removed. At most 18 integer digits."""
    thousands = _thousands(separator)
    groups = (MAX_INTEGER_DIGITS - 3) // 3
    return rf"^-?\d{{1,3}}(\{thousands}\d{{3}}){{1,{groups}}}(\{separator}\d{{1,{AMOUNT_SCALE}}})?$"


def _thousands(separator: str) -> str:
    return "," if separator == "." else "."


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
        # Next: thousands in groups, the spelling of most exports from Spanish-speaking
        # countries (every value of such a file), cast as fast as the plain ones.
        grouped = rest["text"].str.contains(_grouped_pattern(separator))
        fast, slow = rest.filter(grouped), rest.filter(~grouped)
        if fast.height:
            ungrouped = fast["text"].str.replace_all(_thousands(separator), "", literal=True)
            if separator != ".":
                ungrouped = ungrouped.str.replace(separator, ".", literal=True)
            parsed = parsed.scatter(fast["_row"], ungrouped.cast(AMOUNT_DTYPE, strict=False))
        if slow.height:
            parsed = parsed.scatter(slow["_row"], _general_amounts(slow["text"], separator))
    return parsed


def _general_amounts(texts: pl.Series, separator: str) -> pl.Series:
    """Amounts with noise, a sign (leading or trailing `-`, parentheses) and thousands
    separators (only before the decimal one); a lone `-` is 0; null when not a number."""
    thousands = _thousands(separator)
    split = rf"^(?<integer>[\d{thousands}]*)(?:\{separator}(?<fraction>\d*))?$"
    # Each part is a column of its own, computed once: an expression naming a field of an
    # extracted struct extracts it again each time (30x slower on a million amounts).
    parts = (
        texts.to_frame("text")
        .select(pl.col("text").str.replace_all(_NOISE, "").str.extract_groups(_SHAPE).alias("p"))
        .unnest("p")
        .with_columns(pl.col("number").str.extract_groups(split).alias("split"))
        .unnest("split")
        .with_columns(
            pl.col("integer").str.replace_all(thousands, "", literal=True),
            pl.col("fraction").fill_null(""),
        )
        .with_columns(whole=pl.col("integer").str.strip_chars_start("0"))
    )
    columns = ("opened", "sign", "number", "trailing", "closed", "integer", "fraction", "whole")
    opened, sign, number, trailing, closed, integer, fraction, whole = map(pl.col, columns)
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
    return parts.select(
        pl.when(dash)
        .then(pl.lit(0, AMOUNT_DTYPE))
        .when(well_formed)
        .then(canonical.cast(AMOUNT_DTYPE, strict=False))
    ).to_series()


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
