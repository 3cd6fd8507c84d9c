"""The `ledger-incidences` command line."""

import os

# Polars' allocator (jemalloc) keeps freed pages for 10 s by default, in one arena per thread (up
# to 4 per core), and an arena returns them only when it allocates again: a worker kept ~100 MiB
# of an earlier ledger's pages in idle arenas into the next ledger's peak. One arena returning
# pages after 100 ms: after a 40,000-incidence ledger, the next 1M movements peaked at 376-404
# MiB instead of 476-516, for ~5 % more worker CPU (returning them at once costs 30 %). jemalloc
# reads this once, when Polars loads, which the commands' imports do: so it is set here, before
# any of them (and the processes a command starts inherit it).
JEMALLOC_CONF = "narenas:1,dirty_decay_ms:100,muzzy_decay_ms:0"


def _with_our_allocator_conf(conf: str | None) -> str:
    """`conf` with JEMALLOC_CONF last (jemalloc lets the last of repeated options win).

    Appended, not set by default: importing Polars writes its own defaults into the environment
    (polars/__init__.py), so a command started by a process that had loaded Polars first (a test
    run, a benchmark) inherited those and ran without ours: its worker peaked 80-100 MiB
    higher on a 1M-movement ledger."""
    if not conf:
        return JEMALLOC_CONF
    return conf if conf.endswith(JEMALLOC_CONF) else f"{conf},{JEMALLOC_CONF}"


os.environ["_RJEM_MALLOC_CONF"] = _with_our_allocator_conf(os.environ.get("_RJEM_MALLOC_CONF"))
