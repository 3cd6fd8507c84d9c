"""Ledger Incidences domain engine: pure Python + Polars, no web, database or queue imports.

Pipeline (see each module's docstring):

- ledger_sniff / ledger_inspect: upload-time checks → LedgerLayout (or a DomainError).
- ledger_reader.iter_movement_batches: stream MOVEMENT_SCHEMA batches (ledger_csv, ledger_xlsx,
  movement_parse); ledger_reader.narrow: the compact frame evaluate() consumes.
- evaluation.evaluate: rules → consolidation → statistics, an Evaluation.
- diff / snapshot: iteration diffs, first_seen_iteration, canonical JSON and content hash.
"""
