"""Giving the memory a finished ledger freed back to the system.

A worker processes one multi-million-movement ledger after another. Python's big buffers
(Parquet bytes, file chunks) come from glibc's malloc, which keeps freed memory in its arenas
(one per thread that allocated) instead of returning it: measured here, a worker stayed at
~230 MiB after a 1M-movement ledger instead of ~95 MiB, and the next 5M ledger then peaked past
1 GiB. Trimming after each ledger returns what is free; Polars' own allocator (jemalloc) is
told to return its pages at once by `ledger-incidences worker` (see app/cli/main.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Iterator
from contextlib import contextmanager


def _libc() -> ctypes.CDLL | None:
    """glibc, or None where the C library is another (musl, macOS: no malloc_trim)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - only glibc has it
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()
_TRIM = _LIBC.malloc_trim if _LIBC is not None else None
# mallopt's parameter numbers (malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Buffers at least this large get pages of their own, returned to the system when freed.
MMAP_THRESHOLD = 1024 * 1024


def tune_malloc(arenas: int = 2) -> bool:
    """Make glibc's malloc give a worker's ledger buffers back. By default each thread that
    allocates may get an arena of its own (up to 8 per core), and a freed large buffer raises
    the size under which buffers come from (and stay in) an arena, so numpy's tokenizer and
    Parquet buffers of one ledger stayed mapped for the next: a worker that had processed a few
    large ledgers idled at 270-420 MiB of the 512 MiB a hostile file may use. A fixed mmap
    threshold and two arenas keep those pages returned (the 300,000-account hostile file
    peaked at 431 MiB instead of 596). To be called before the process starts its threads.
    True when glibc took both settings (False elsewhere: other allocators behave otherwise)."""
    if _LIBC is None:
        return False
    limited = _LIBC.mallopt(_M_ARENA_MAX, arenas) == 1
    return _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and limited


def release_freed_memory() -> None:
    """Collect garbage cycles, then hand the allocator's free pages back to the system."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Cyclic garbage collection off while a burst of long-lived objects is built (a big
    ledger's incidences, their JSON shapes, the previous snapshot's): every full collection
    walks all live objects, and such a burst triggers many. Measured on 100,000 incidences,
    evaluation and snapshot took 10.3–10.9 s with them and 5.2–7.0 s without. Reference
    counting still frees everything acyclic at once; cycles wait for the next collection (at
    the latest release_freed_memory, after the job). Process-wide: overlapping uses leave it
    on at the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
