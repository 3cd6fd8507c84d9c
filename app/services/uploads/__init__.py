"""Receiving a ledger upload: spooled, checked, stored durably, accepted."""
