"""Giving the memory a finished ledger freed back to the system.

A worker processes one multi-million-movement ledger after another. Python's big buffers
(Parquet bytes, file chunks) come from glibc's malloc, which keeps freed memory in its arenas
(one per thread that allocated) instead of returning it: measured here, a worker stayed at
~230 MiB after a 1M-movement ledger instead of ~95 MiB, and the next 5M ledger then peaked past
1 GiB. Trimming after each job that grew the process returns what is free; Polars' own
allocator (jemalloc) is told to return its pages soon, from one arena, by the command line
(app/cli/__init__.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
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
# Buffers at least this large get pages of their own, returned to the system when freed. The
# smaller ones a ledger's pieces go through (1-8 MiB: file chunks, records, tokenizer masks,
# Parquet bytes) come from the arenas and are reused from one piece to the next: with 1 MiB
# here, each was mapped and zeroed anew, 4-5 % of a worker's CPU for the same peaks
# (bench/ingest.py, bench/hostile.py). 32 MiB is where glibc's own moving threshold stops.
MMAP_THRESHOLD = 32 * 1024 * 1024


def tune_malloc(arenas: int = 2) -> bool:
    """Make glibc's malloc give a worker's ledger buffers back. By default each thread that
    allocates may get an arena of its own (up to 8 per core), and a freed large buffer raises
    the size under which buffers come from (and stay in) an arena, so numpy's tokenizer and
    Parquet buffers of one ledger stayed mapped for the next: a worker that had processed a few
    large ledgers idled at 270-420 MiB of the 512 MiB a hostile file may use. A fixed mmap
    threshold (which also keeps the trim threshold at its default, so freed memory at the top
    of an arena goes back) and two arenas keep those pages returned (the 300,000-account
    hostile file peaked at 431 MiB instead of 596). To be called before the process starts its
    threads. True when glibc took both settings (False elsewhere: other allocators behave
    otherwise)."""
    if _LIBC is None:
        return False
    limited = _LIBC.mallopt(_M_ARENA_MAX, arenas) == 1
    return _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and limited


_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident set size (Linux; 0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except OSError:
        return 0


# A job that grew the process by less than this left little to give back.
RELEASE_GROWTH_BYTES = 64 * 1024 * 1024


class MemoryReleaser:
    """Gives freed memory back after the jobs that grew the process: collecting cycles and
    trimming the allocator walk the whole heap (100-200 ms on a warm worker), which small jobs
    (re-processing a few thousand movements, several a second under load) must not pay each
    time. The process is compared with its size after the last release."""

    def __init__(self, growth_bytes: int = RELEASE_GROWTH_BYTES) -> None:
        self._growth_bytes = growth_bytes
        self._released_at = resident_bytes()

    def due(self) -> bool:
        """Whether the process grew by growth_bytes since the last release (cheap: one read)."""
        return resident_bytes() - self._released_at >= self._growth_bytes

    def release(self) -> None:
        """release_freed_memory, and remember the size it left (blocking: run it in a thread)."""
        release_freed_memory()
        self._released_at = resident_bytes()


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
    counting still frees everything acyclic at once; cycles wait for the collector's next run
    (or the release after a job that grew the process). Process-wide: overlapping uses leave it
    on at the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
