"""Giving the memory a finished ledger freed back to the system.

A worker processes one multi-million-movement ledger after another. Python's big buffers
(Parquet bytes, file chunks) come from glibc's malloc, which keeps freed memory in its arenas
(one per thread that allocated) instead of returning it: measured here, a worker stayed at
~230 MiB after a 1M-movement ledger instead of ~95 MiB, and the next 5M ledger then peaked past
1 GiB. Trimming after each ledger returns what is free; Polars' own allocator (jemalloc) is
told to return its pages at once by `ledger-incidences worker` (see app/cli.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Collect garbage cycles, then hand the allocator's free pages back to the system."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)

