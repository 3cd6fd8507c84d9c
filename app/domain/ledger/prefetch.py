"""Running an iterator one step ahead in a background thread (a two-stage pipeline).

Reading a ledger (CSV tokenising, XLSX decoding) and typing its movements are both heavy and
both release the GIL in Polars / calamine, so producing batch n+1 while batch n is typed keeps
both cores busy. Order is kept, memory stays bounded by `depth`, and the producer's exception
is raised in the consumer at the point where its item would have come.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

_POLL_SECONDS = 0.1
_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterator[T], depth: int = 2) -> Generator[T, None, None]:
    """Yield the items of `items` in order, produced ahead by a thread (at most `depth` ready)."""
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
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
        while (item := ready.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()  # the consumer stopped early (or is done): let the producer finish
        producer.join()
