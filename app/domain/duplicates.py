"""Exact duplicate detection (DUPLICATE_MOVEMENT) over a narrow frame, in bounded memory.

Movements are duplicates when equal on (account_code, date, voucher, document_type,
document_number, description, debit, credit). The narrow frame carries six of those fields
exactly and the two long texts only as `dup_hash`, a 64-bit hash of them. Stage one hashes the
six fields plus `dup_hash` into one 64-bit value per row and keeps the valid rows whose value
repeats (a sort, no hash table): equal movements always hash equal, so this superset holds every
duplicate, and a collision can only add a candidate. Stage two fetches the candidates' real
texts and groups them exactly. Memory beyond the narrow frame is proportional to the candidates.
document_type compares upper-cased, as document type codes do.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

NARROW_KEYS = ("voucher", "account_code", "date", "document_type", "debit", "credit")
TEXT_KEYS = ("document_number", "description")
_SEED = 0x5EED

# Columns of a movement that the narrow frame leaves out and evaluate may need for a few lines.
FETCH_COLUMNS = ("document_number", "description", "account_name", "invalid_reason")
# fetch_rows(lines) → frame with `line` and FETCH_COLUMNS for those lines (sorted, unique).
FetchRows = Callable[[pl.Series], pl.DataFrame]


def duplicate_candidates(movements: pl.DataFrame) -> pl.DataFrame:
    """Valid rows (`line` + the narrow keys) that may have a duplicate: a superset of them."""
    keyed = movements.select(pl.struct(*NARROW_KEYS, "dup_hash").hash(_SEED)).to_series()
    ordered = keyed.sort()
    repeated = ordered.filter(ordered == ordered.shift(1)).unique()
    if repeated.is_empty():
        return movements.select("line", *NARROW_KEYS).clear()
    mask = movements.select(
        pl.col("invalid_field").is_null() & keyed.is_in(repeated.implode())
    ).to_series()
    return movements.select("line", *NARROW_KEYS).filter(mask)


def confirm_duplicates(candidates: pl.DataFrame, texts: pl.DataFrame) -> pl.Series:
    """Lines of every copy of every exact duplicate among the candidates, ascending."""
    if candidates.is_empty():
        return pl.Series("line", [], dtype=pl.Int32)
    exact = [*NARROW_KEYS, *TEXT_KEYS]
    joined = candidates.join(texts.select("line", *TEXT_KEYS), on="line", how="left")
    return joined.filter(pl.len().over(exact) >= 2)["line"].sort()
