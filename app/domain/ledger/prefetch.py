"""Running an iterator one step ahead in a background thread (a two-stage pipeline).

Reading a ledger (CSV tokenising, XLSX decoding) and typing its movements are both heavy and
both release the GIL in Polars, so producing batch n+1 while batch n is typed keeps both cores
busy. Order is kept, memory stays bounded by `depth`, and the producer's exception is raised in
the consumer at the point where its item would have come.

A `stop` event set from outside (a job that timed out or was cancelled, whose thread cannot be
interrupted) ends the producer after the item it is making and the consumer at its next wait:
no thread goes on reading a ledger nobody waits for.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

_POLL_SECONDS = 0.1
_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Stopped(Exception):
    """The `stop` event was set while the consumer waited for an item."""


def prefetched(
    items: Iterator[T], depth: int = 2, stop: threading.Event | None = None
) -> Generator[T, None, None]:
    """Yield the items of `items` in order, produced ahead by a thread (at most `depth` ready).
    Setting `stop` ends both sides (the consumer raises Stopped)."""
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    done = threading.Event()

    def stopped() -> bool:
        return done.is_set() or (stop is not None and stop.is_set())

    def put(item: object) -> bool:
        while not stopped():
            try:
                ready.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator's cleanup (its open file) runs now, not at GC

    producer = threading.Thread(target=produce, name="prefetch", daemon=True)
    producer.start()
    try:
        while (item := _get(ready, stopped)) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        done.set()  # the consumer stopped early (or is done): let the producer finish
        producer.join()


def _get(ready: queue.Queue[object], stopped: Callable[[], bool]) -> object:
    while True:
        try:
            return ready.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            if stopped():
                raise Stopped("the reading was stopped") from None
