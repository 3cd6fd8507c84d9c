"""prefetched(): same items in the same order, errors where they happened, cleanup on early stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from app.domain.ledger.prefetch import prefetched


def test_items_come_in_order_whatever_the_depth() -> None:
    for depth in (1, 2, 5):
        assert list(prefetched(iter(range(100)), depth)) == list(range(100))


def test_the_producers_error_is_raised_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad record")

    seen = []
    with pytest.raises(ValueError, match="bad record"):
        for item in prefetched(failing()):
            seen.append(item)
    assert seen == [1, 2]


def test_stopping_early_closes_the_source_and_ends_its_thread() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    before = threading.active_count()
    items = prefetched(endless(), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed.is_set()
    assert threading.active_count() == before
