"""prefetched(): same items in the same order, errors where they happened, cleanup on early stop,
and a stop event that ends both threads (a job that timed out)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from app.domain.ledger.prefetch import Stopped, prefetched


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


def _prefetch_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "prefetch" and t.is_alive())


def _wait_until(condition: Callable[[], bool], seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_stop_ends_the_producer_of_a_stream_nobody_closes() -> None:
    """A job that timed out leaves its batch stream unclosed (its thread was inside next(),
    and may keep a reference): the stop event alone ends the reading thread."""
    before = _prefetch_threads()
    stop = threading.Event()
    items = prefetched(iter(range(10**9)), depth=2, stop=stop)
    assert next(items) == 0
    assert _prefetch_threads() == before + 1  # producing ahead, blocked on a full queue
    stop.set()
    assert _wait_until(lambda: _prefetch_threads() == before)
    with pytest.raises(Stopped):
        list(items)


def test_stop_wakes_a_consumer_waiting_for_a_slow_producer() -> None:
    stop = threading.Event()

    def slow() -> Iterator[int]:
        yield 1
        time.sleep(0.5)
        yield 2

    before = _prefetch_threads()
    items = prefetched(slow(), stop=stop)
    assert next(items) == 1
    threading.Timer(0.05, stop.set).start()
    with pytest.raises(Stopped):
        next(items)  # it then joins the producer, which ends once its item is made
    assert _prefetch_threads() == before
