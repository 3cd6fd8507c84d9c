"""Every Redis key the service writes, in one place, under the deployment's prefix."""

from __future__ import annotations


def workers(prefix: str) -> str:
    """Sorted set of worker ids scored by their last heartbeat (unix seconds)."""
    return f"{prefix}:workers"
