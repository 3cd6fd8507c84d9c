"""Packing an incidence's ascending line numbers as little-endian int32 bytes."""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right
from collections.abc import Iterable


def pack_lines(lines: Iterable[int]) -> bytes:
    """The lines as little-endian int32 bytes."""
    packed = array("i", lines)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


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
