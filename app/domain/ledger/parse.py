"""Columnar parsing of raw ledger text into typed movements (SPEC §3), with Polars expressions.

Amounts are `Decimal(38, 18)`: a cell is valid when, after removing thousands noise, it has at
most 18 decimal places and 18 integer digits, so it is stored exactly; anything longer is
rejected (ROW_INVALID), never rounded. Eighteen places keep the shortest repr of every XLSX
float of magnitude >= 0.01 exact (0.1 + 0.2 is stored by Excel as 0.30000000000000004, and that
is what the ledger says). Totals stay exact below 1e20 (see `evaluation.check_totals_fit`).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from app.domain.ledger.format import AmountMode, LedgerLayout

AMOUNT_SCALE = 18
MAX_INTEGER_DIGITS = 18
AMOUNT_DTYPE = pl.Decimal(38, AMOUNT_SCALE)
DUP_HASH_SEED = 0x1ED9E7

# One typed movement per non-blank data row. `line` is the row's record number in the file
# (header = 1, blank rows counted); `invalid_field` is the first unparseable required field in
# table order (null when the row is valid) and `invalid_reason` says why; `dup_hash` hashes the
# duplicate-tuple text fields that the narrow frame leaves out (document_number, description).
MOVEMENT_SCHEMA: pl.Schema = pl.Schema(
    {
        "line": pl.Int32(),
        "account_code": pl.String(),
        "date": pl.Date(),
        "voucher": pl.String(),
        "document_type": pl.String(),
        "document_number": pl.String(),
        "description": pl.String(),
        "account_name": pl.String(),
        "cost_center": pl.String(),
        "third_party": pl.String(),
        "debit": AMOUNT_DTYPE,
        "credit": AMOUNT_DTYPE,
        "invalid_field": pl.String(),
        "invalid_reason": pl.String(),
        "dup_hash": pl.UInt64(),
    }
)
_TEXT_COLUMNS = (
    "account_code",
    "voucher",
    "document_type",
    "document_number",
    "description",
    "account_name",
    "cost_center",
    "third_party",
)
# Accepted date spellings: YYYY-MM-DD, DD/MM/YYYY, DD-MM-YYYY (day and month may be one digit).
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y")
_DATE_SHAPE = r"^(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4}|\d{1,2}-\d{1,2}-\d{4})$"
# Sign, optional "$", optional sign, integer digits, optional fraction (after noise removal).
_AMOUNT_RE = r"^([+-]?)\$?([+-]?)(\d*)(?:\.(\d*))?$"
_REASON_VALUE_CHARS = 60
# Codes become incidence keys, stored as Postgres text (no NUL) in a btree index (rows of at
# most ~2.7 kB): a longer code, or one with a NUL, cannot be a code and rejects its row. 100 is
# also the longest code a client's chart or document types can hold.
MAX_CODE_CHARS = 100
_CODE_FIELDS = ("account_code", "voucher", "document_type")


def parse_movements(raw: pl.DataFrame, layout: LedgerLayout) -> pl.DataFrame:
    """Turn a raw frame (`line` + one Utf8 column per resolved field) into MOVEMENT_SCHEMA."""
    present = set(layout.fields)
    amount_fields = _amount_fields(layout)
    frame = _trimmed(
        raw.select(
            pl.col("line").cast(pl.Int32),
            *(
                (pl.col(name) if name in present else pl.lit(None, pl.String)).alias(name)
                for name in _TEXT_COLUMNS
            ),
            pl.col("date").alias("_date_text"),
            *(pl.col(name).alias(f"_{name}_text") for name in amount_fields),
        )
    )
    frame = frame.with_columns(
        _parse_dates(frame["_date_text"]).alias("date"),
        *(
            parse_amounts(frame[f"_{name}_text"], layout.decimal_separator).alias(f"_{name}")
            for name in amount_fields
        ),
    )
    not_a_code = _not_a_code_check(frame)
    checks = [
        ("account_code", pl.col("account_code").is_null() | not_a_code("account_code")),
        ("date", pl.col("date").is_null()),
        ("voucher", pl.col("voucher").is_null() | not_a_code("voucher")),
        *((name, pl.col(f"_{name}").is_null()) for name in amount_fields),
        ("document_type", not_a_code("document_type")),
    ]
    # The first failed check in table order names the field.
    invalid = pl.coalesce(pl.when(failed).then(pl.lit(name)) for name, failed in checks)
    frame = frame.with_columns(
        invalid.alias("invalid_field"),
        *_debit_credit(layout),
        pl.concat_str(
            [pl.col("document_number").fill_null(""), pl.col("description").fill_null("")],
            separator="\x1f",
        )
        .hash(DUP_HASH_SEED)
        .alias("dup_hash"),
    )
    frame = frame.with_columns(_reasons(frame, amount_fields))
    return frame.select(MOVEMENT_SCHEMA.names()).cast(MOVEMENT_SCHEMA)


def _trimmed(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text column trimmed, and null when empty."""
    texts = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    frame = frame.with_columns(pl.col(texts).str.strip_chars())
    # The CSV reader already reads empty cells as null, so "" is left only by blank-but-spaced
    # cells: rare, and nulling them costs a copy of the column, so only columns that have one.
    has_empty = frame.select((pl.col(texts).str.len_bytes() == 0).any()).row(0, named=True)
    emptied = [name for name, found in has_empty.items() if found]
    if not emptied:
        return frame
    return frame.with_columns(
        pl.when(pl.col(name).str.len_bytes() > 0).then(pl.col(name)).alias(name) for name in emptied
    )


def _not_a_code_check(frame: pl.DataFrame) -> Callable[[str], pl.Expr]:
    """name → "this code field's value cannot be a code" (too long, or with a NUL).

    Such values are rare: one cheap scan of the code columns (byte lengths, a memchr for NUL)
    tells which columns have any, and only those get the exact per-row check."""
    suspect = frame.select(
        (
            (pl.col(name).str.len_bytes() > MAX_CODE_CHARS)
            | pl.col(name).str.contains("\x00", literal=True)
        ).any()
        for name in _CODE_FIELDS
    ).row(0, named=True)

    def check(name: str) -> pl.Expr:
        if not suspect[name]:
            return pl.lit(False)
        value = pl.col(name)
        return (value.str.len_chars() > MAX_CODE_CHARS) | value.str.contains("\x00", literal=True)

    return check


def _parse_dates(texts: pl.Series) -> pl.Series:
    """Dates of trimmed texts (null when invalid). A ledger has a few hundred distinct dates at
    most, so each distinct text is parsed once and mapped back."""
    distinct = texts.drop_nulls().unique()
    parsed = distinct.to_frame("text").select(_parse_date(pl.col("text"))).to_series()
    return texts.replace_strict(distinct, parsed, default=None, return_dtype=pl.Date)


def _parse_date(value: pl.Expr) -> pl.Expr:
    # chrono alone is lenient (two-digit years, signs, spaces), so the shape is checked first;
    # the three shapes are disjoint, so at most one format parses a given text.
    return pl.when(value.str.contains(_DATE_SHAPE)).then(
        pl.coalesce(value.str.to_date(fmt, strict=False) for fmt in _DATE_FORMATS)
    )


def _amount_fields(layout: LedgerLayout) -> tuple[str, ...]:
    if layout.amount_mode is AmountMode.SIGNED_AMOUNT:
        return ("amount",)
    return ("debit", "credit")


def parse_amounts(text: pl.Series, decimal_separator: str) -> pl.Series:
    """Exact Decimals of trimmed amount texts: null/empty is 0, unparseable or too long is null."""
    plain_re = rf"^-?\d{{1,{MAX_INTEGER_DIGITS}}}(\{decimal_separator}\d{{1,{AMOUNT_SCALE}}})?$"
    value = pl.col("text")
    if decimal_separator != ".":
        value = value.str.replace(decimal_separator, ".", literal=True)
    frame = text.to_frame("text").with_columns(plain=pl.col("text").str.contains(plain_re))
    # Fast path: empty cells and plain numbers, which are nearly all of them.
    parsed = frame.select(
        pl.when(pl.col("text").is_null())
        .then(pl.lit(0, AMOUNT_DTYPE))
        .when(pl.col("plain"))
        .then(value.cast(AMOUNT_DTYPE, strict=False))
    ).to_series()
    rest = frame.with_row_index("_row").filter(pl.col("text").is_not_null() & ~pl.col("plain"))
    if rest.height:
        slow = rest.select(_general_amount(pl.col("text"), decimal_separator)).to_series()
        parsed = parsed.scatter(rest["_row"], slow)
    return parsed


def _general_amount(raw: pl.Expr, decimal_separator: str) -> pl.Expr:
    """Amount with thousands noise, spaces, `$` and signs; null when not a valid number."""
    thousands = "," if decimal_separator == "." else "."
    clean = raw.str.replace_all(r"\s", "").str.replace_all(thousands, "", literal=True)
    if decimal_separator != ".":
        clean = clean.str.replace_all(decimal_separator, ".", literal=True)
    parts = clean.str.extract_groups(_AMOUNT_RE)
    sign1, sign2 = parts.struct.field("1"), parts.struct.field("2")
    digits = parts.struct.field("3")
    whole = digits.str.strip_chars_start("0")
    fraction = parts.struct.field("4").fill_null("")
    well_formed = (
        digits.is_not_null()
        & ((sign1 == "") | (sign2 == ""))
        & (digits.str.len_bytes() + fraction.str.len_bytes() > 0)
        & (whole.str.len_bytes() <= MAX_INTEGER_DIGITS)
        & (fraction.str.len_bytes() <= AMOUNT_SCALE)
    )
    negative = (sign1 == "-") | (sign2 == "-")
    canonical = pl.concat_str(
        [
            pl.when(negative).then(pl.lit("-")).otherwise(pl.lit("")),
            pl.when(whole == "").then(pl.lit("0")).otherwise(whole),
            pl.lit("."),
            pl.when(fraction == "").then(pl.lit("0")).otherwise(fraction),
        ]
    )
    return (
        pl.when(clean == "")
        .then(pl.lit(0, AMOUNT_DTYPE))
        .when(well_formed)
        .then(canonical.cast(AMOUNT_DTYPE, strict=False))
    )


def _debit_credit(layout: LedgerLayout) -> list[pl.Expr]:
    if layout.amount_mode is AmountMode.DEBIT_CREDIT:
        return [pl.col("_debit").alias("debit"), pl.col("_credit").alias("credit")]
    amount = pl.col("_amount")
    zero = pl.lit(0).cast(AMOUNT_DTYPE)
    return [
        pl.when(amount > 0).then(amount).when(amount.is_not_null()).then(zero).alias("debit"),
        pl.when(amount < 0).then(-amount).when(amount.is_not_null()).then(zero).alias("credit"),
    ]


def _reasons(frame: pl.DataFrame, amount_fields: tuple[str, ...]) -> pl.Series:
    """Human reasons for the (usually few) invalid rows, computed on those rows only."""
    reasons = pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias("invalid_reason")
    bad = frame.with_row_index("_row").filter(pl.col("invalid_field").is_not_null())
    if bad.height == 0:
        return reasons
    field = pl.col("invalid_field")
    empty = pl.coalesce(
        pl.when(field == name).then(pl.col(name).is_null()) for name in _CODE_FIELDS
    )
    reason = (
        pl.when(field.is_in(_CODE_FIELDS) & empty)
        .then(pl.format("{} is empty", field))
        .when(field.is_in(_CODE_FIELDS))
        .then(
            pl.format(
                "{} is longer than {} characters or has a NUL character",
                field,
                pl.lit(MAX_CODE_CHARS),
            )
        )
        .when((field == "date") & pl.col("_date_text").is_null())
        .then(pl.lit("date is empty"))
        .when(field == "date")
        .then(pl.format("date '{}' is not a valid date", _shown("_date_text")))
    )
    for name in amount_fields:
        reason = reason.when(field == name).then(
            pl.format("{} '{}' is not a valid amount", pl.lit(name), _shown(f"_{name}_text"))
        )
    values = bad.select(reason.otherwise(None)).to_series()
    return reasons.scatter(bad["_row"], values)


def _shown(name: str) -> pl.Expr:
    value = pl.col(name)
    return (
        pl.when(value.str.len_chars() > _REASON_VALUE_CHARS)
        .then(pl.concat_str([value.str.slice(0, _REASON_VALUE_CHARS), pl.lit("…")]))
        .otherwise(value)
    )
