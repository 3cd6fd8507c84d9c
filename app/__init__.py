"""Ledger Incidences: pre-computed general-ledger incidences for monthly closings."""

__version__ = "0.1.0"
