"""The `ledger-incidences` command line."""
