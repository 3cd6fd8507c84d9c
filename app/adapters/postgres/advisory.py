"""Keys of Postgres advisory locks."""

from __future__ import annotations

import hashlib


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for these parts (collisions only over-serialise)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
