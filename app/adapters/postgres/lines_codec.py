"""Packing an incidence's ascending line numbers as little-endian int32 bytes."""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right

import numpy as np
import polars as pl


def pack_lines(lines: pl.Series) -> memoryview:
    """The lines as little-endian int32 bytes: one contiguous copy of the column (no Python
    ints), whose slices are zero-copy views (a big ledger's incidences hold millions of lines)."""
    packed = np.ascontiguousarray(lines.cast(pl.Int32).to_numpy(), dtype="<i4")
    return packed.data.cast("B")


def unpack_lines(data: bytes) -> array[int]:
    """The lines packed by pack_lines."""
    lines = array("i")
    lines.frombytes(data)
    if sys.byteorder == "big":
        lines.byteswap()
    return lines


def page_after(data: bytes, after: int, limit: int) -> list[int]:
    """Up to `limit` lines greater than `after` (keyset pagination over the sorted lines)."""
    lines = unpack_lines(data)
    start = bisect_right(lines, after)
    return lines[start : start + limit].tolist()
