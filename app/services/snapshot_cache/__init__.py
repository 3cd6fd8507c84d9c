"""Serving snapshots: near cache, Redis, Postgres behind, and their invalidation."""
