"""Keyset pages (SPEC §6): a list read one row past the page tells whether another follows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def keyset_page(fetched: Sequence[T], limit: int, cursor: Callable[[T], object]) -> dict[str, Any]:
    """`{"items", "next_cursor"}` from up to `limit + 1` items read in page order: the extra
    one is not shown, it only says that a next page exists, which starts after the cursor of
    the last item shown (None on the last page)."""
    items = list(fetched[:limit])
    return {"items": items, "next_cursor": cursor(items[-1]) if len(fetched) > limit else None}
