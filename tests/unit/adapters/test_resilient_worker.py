"""The worker outlives Redis outages by running arq's public main() again (arq has no hook)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError

from app.adapters import queue
from app.adapters.queue import ResilientWorker


async def _noop(ctx: dict[str, Any], *args: Any) -> None:
    return None


def test_arq_main_still_runs_the_startup_hook_and_raises_redis_errors() -> None:
    """What ResilientWorker relies on: arq's main() calls on_startup, then polls the queue, and
    lets a Redis error out. If arq changes this, this test says so before a Redis restart does."""
    source = inspect.getsource(Worker.main)
    assert "await self.on_startup(self.ctx)" in source
    assert "try:" not in source, "arq's main() now handles errors itself: revisit ResilientWorker"


async def test_main_runs_again_after_redis_errors_and_starts_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    outages = iter([RedisConnectionError("down"), RedisConnectionError("still down")])

    async def flaky_main(self: Worker) -> None:
        assert self.on_startup is not None
        await self.on_startup(self.ctx)  # as arq's main() does each time it starts
        failure = next(outages, None)
        if failure is not None:
            raise failure
        calls.append("polled")

    async def startup(ctx: dict[str, Any]) -> None:
        calls.append("started")

    monkeypatch.setattr(Worker, "main", flaky_main)
    monkeypatch.setattr(queue, "REDIS_DOWN_PAUSE_SECONDS", 0)
    worker = ResilientWorker(functions=[_noop], on_startup=startup, burst=True)
    await worker.main()
    assert calls == ["started", "polled"]


async def test_other_errors_still_end_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken_main(self: Worker) -> None:
        raise RuntimeError("a bug, not an outage")

    monkeypatch.setattr(Worker, "main", broken_main)
    with pytest.raises(RuntimeError):
        await ResilientWorker(functions=[_noop], burst=True).main()
