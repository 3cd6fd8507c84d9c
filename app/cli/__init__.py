"""The `ledger-incidences` command line."""

import os

# Polars' allocator (jemalloc) keeps freed pages for 10 s by default, in one arena per thread (up
# to 4 per core), and an arena returns them only when it allocates again: a worker kept ~100 MiB
# of an earlier ledger's pages in idle arenas into the next ledger's peak. One arena returning
# pages after 100 ms: after a 40,000-incidence ledger, the next 1M movements peaked at 376-404
# MiB instead of 476-516, for ~5 % more worker CPU (returning them at once costs 30 %). jemalloc
# reads this once, when Polars loads, which the commands' imports do: so it is set here, before
# any of them (and the processes a command starts inherit it).
os.environ.setdefault("_RJEM_MALLOC_CONF", "narenas:1,dirty_decay_ms:100,muzzy_decay_ms:0")
