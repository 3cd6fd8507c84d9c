"""Columnar typing of raw ledger text into movements (SPEC §3), with Polars expressions.

A raw frame holds `line`, one text column per resolved field, EXTRA_FIELDS (the field count of
a row with text beyond the header's width) and, from a workbook, `_num_<field>`: the amounts
of numeric cells, already exact decimal text (see amounts.py for the rest).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from app.domain.ledger.amounts import AMOUNT_DTYPE, parse_amounts
from app.domain.ledger.csv import EXTRA_FIELDS
from app.domain.ledger.format import TEXT_FIELDS, AmountMode, LedgerLayout

DUP_HASH_SEED = 0x1ED9E7
NUMERIC_PREFIX = "_num_"

# One typed movement per non-blank data row. `line` is the row's record number in the file
# (header = 1, blank rows counted); `invalid_field` is the first unparseable required field in
# table order, or `fields` before them all for a row with more fields than the header (null when
# the row is valid) and `invalid_reason` says why; `dup_hash` hashes the duplicate-tuple text
# fields that the narrow frame leaves out (document_number, description).
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
_TEXT_COLUMNS = ("account_code", "voucher", *TEXT_FIELDS)
# Accepted date spellings: YYYY-MM-DD, DD/MM/YYYY, DD-MM-YYYY (day and month may be one digit),
# each perhaps with a time of day, which is dropped: the date part counts.
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y")
_DATE_SHAPE = r"^(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4}|\d{1,2}-\d{1,2}-\d{4})$"
_TIME_OF_DAY = (
    r"(?i)[ T]+([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?"
    r"(\s*[ap]\.?m\.?)?(\s*(z|[+-]\d{2}:?\d{2}))?$"
)
_REASON_VALUE_CHARS = 60
# Required codes become incidence keys, stored as Postgres text (no NUL) in a btree index (rows
# of at most ~2.7 kB): a longer one, or one with a NUL, cannot be a code and rejects its row.
# 100 is also the longest code a client's chart or document types can hold. An optional
# document type is never rejected: a longer one is cut (with a hash, so that different ones
# stay apart) to the same size, and is just an unknown document type.
MAX_CODE_CHARS = 100
REQUIRED_CODES = ("account_code", "voucher")
_CUT_CODE_CHARS = MAX_CODE_CHARS - 12


def parse_movements(raw: pl.DataFrame, layout: LedgerLayout, separator: str) -> pl.DataFrame:
    """Turn a raw frame into MOVEMENT_SCHEMA; text amounts use this decimal separator."""
    present = set(layout.fields)
    amount_fields = amount_fields_of(layout)
    numeric = {name for name in amount_fields if f"{NUMERIC_PREFIX}{name}" in raw.columns}
    frame = _trimmed(
        raw.select(
            pl.col("line").cast(pl.Int32),
            *(
                (pl.col(name) if name in present else pl.lit(None, pl.String)).alias(name)
                for name in _TEXT_COLUMNS
            ),
            pl.col("date").alias("_date_text"),
            *(pl.col(name).alias(f"_{name}_text") for name in amount_fields),
            *(pl.col(f"{NUMERIC_PREFIX}{name}") for name in numeric),
            (pl.col(EXTRA_FIELDS) if EXTRA_FIELDS in raw.columns else pl.lit(None, pl.Int32))
            .cast(pl.Int32)
            .alias(EXTRA_FIELDS),
        )
    )
    frame = frame.with_columns(
        _parse_dates(frame["_date_text"]).alias("date"),
        *(
            _amounts(frame, name, separator, name in numeric).alias(f"_{name}")
            for name in amount_fields
        ),
    )
    not_a_code = _not_a_code_check(frame)
    long_types = frame.select((pl.col("document_type").str.len_bytes() > MAX_CODE_CHARS).any())
    checks = [
        ("fields", pl.col(EXTRA_FIELDS).is_not_null()),
        ("account_code", pl.col("account_code").is_null() | not_a_code("account_code")),
        ("date", pl.col("date").is_null()),
        ("voucher", pl.col("voucher").is_null() | not_a_code("voucher")),
        *((name, pl.col(f"_{name}").is_null()) for name in amount_fields),
    ]
    # The first failed check names the field.
    invalid = pl.coalesce(pl.when(failed).then(pl.lit(name)) for name, failed in checks)
    frame = frame.with_columns(
        invalid.alias("invalid_field"),
        *_debit_credit(layout),
        *([_bounded_code(pl.col("document_type"))] if long_types.item() else []),
        pl.concat_str(
            [pl.col("document_number").fill_null(""), pl.col("description").fill_null("")],
            separator="\x1f",
        )
        .hash(DUP_HASH_SEED)
        .alias("dup_hash"),
    )
    frame = frame.with_columns(_reasons(frame, amount_fields, len(layout.header)))
    return frame.select(MOVEMENT_SCHEMA.names()).cast(MOVEMENT_SCHEMA)


def amount_fields_of(layout: LedgerLayout) -> tuple[str, ...]:
    """The amount columns a layout reads."""
    if layout.amount_mode is AmountMode.SIGNED_AMOUNT:
        return ("amount",)
    return ("debit", "credit")


def _amounts(frame: pl.DataFrame, name: str, separator: str, numeric: bool) -> pl.Series:
    parsed = parse_amounts(frame[f"_{name}_text"], separator)
    if not numeric:
        return parsed
    # A workbook's numeric cells are numbers, written with "." whatever the text cells use.
    return parse_amounts(frame[f"{NUMERIC_PREFIX}{name}"], ".").zip_with(
        frame[f"{NUMERIC_PREFIX}{name}"].is_not_null(), parsed
    )


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
    """name → "this required code's value cannot be a code" (too long, or with a NUL).

    Such values are rare: one cheap scan of the code columns (byte lengths, a memchr for NUL)
    tells which columns have any, and only those get the exact per-row check. (A NUL can only
    come from a workbook's escapes, which the XLSX reader keeps in required codes alone.)"""
    suspect = frame.select(
        (
            (pl.col(name).str.len_bytes() > MAX_CODE_CHARS)
            | pl.col(name).str.contains("\x00", literal=True)
        ).any()
        for name in REQUIRED_CODES
    ).row(0, named=True)

    def check(name: str) -> pl.Expr:
        if not suspect[name]:
            return pl.lit(False)
        value = pl.col(name)
        return (value.str.len_chars() > MAX_CODE_CHARS) | value.str.contains("\x00", literal=True)

    return check


def _bounded_code(code: pl.Expr) -> pl.Expr:
    """A document type of at most MAX_CODE_CHARS characters: a longer one is cut, with a hash
    of the whole so that two different ones stay apart."""
    suffix = (code.hash(DUP_HASH_SEED) % 10**10).cast(pl.String).str.zfill(10)
    cut = pl.concat_str([code.str.slice(0, _CUT_CODE_CHARS), pl.lit("…#"), suffix])
    return (
        pl.when(code.str.len_chars() > MAX_CODE_CHARS)
        .then(cut)
        .otherwise(code)
        .alias("document_type")
    )


def _parse_dates(texts: pl.Series) -> pl.Series:
    """Dates of trimmed texts (null when invalid). A ledger has a few hundred distinct dates at
    most, so each distinct text is parsed once and mapped back."""
    distinct = texts.drop_nulls().unique()
    parsed = distinct.to_frame("text").select(_parse_date(pl.col("text"))).to_series()
    return texts.replace_strict(distinct, parsed, default=None, return_dtype=pl.Date)


def _parse_date(value: pl.Expr) -> pl.Expr:
    day = value.str.replace(_TIME_OF_DAY, "")
    # chrono alone is lenient (two-digit years, signs, spaces), so the shape is checked first;
    # the three shapes are disjoint, so at most one format parses a given text.
    return pl.when(day.str.contains(_DATE_SHAPE)).then(
        pl.coalesce(day.str.to_date(fmt, strict=False) for fmt in _DATE_FORMATS)
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


def _reasons(frame: pl.DataFrame, amount_fields: tuple[str, ...], width: int) -> pl.Series:
    """Human reasons for the (usually few) invalid rows, computed on those rows only."""
    reasons = pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias("invalid_reason")
    bad = frame.with_row_index("_row").filter(pl.col("invalid_field").is_not_null())
    if bad.height == 0:
        return reasons
    field = pl.col("invalid_field")
    empty = pl.coalesce(
        pl.when(field == name).then(pl.col(name).is_null()) for name in REQUIRED_CODES
    )
    reason = (
        pl.when(field == "fields")
        .then(pl.format("the row has {} fields, the header {}", EXTRA_FIELDS, pl.lit(width)))
        .when(field.is_in(REQUIRED_CODES) & empty)
        .then(pl.format("{} is empty", field))
        .when(field.is_in(REQUIRED_CODES))
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
