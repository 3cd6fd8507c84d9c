"""`dev` restarts a child that stopped: at once after a healthy run, with a doubling pause after
quick failures, and not at all past its budget of quick failures in a row."""

from __future__ import annotations

import pytest

from app.cli.supervision import Supervised


class FakeProcess:
    def __init__(self) -> None:
        self.returncode: int | None = None
        self.pid = 4242

    def poll(self) -> int | None:
        return self.returncode


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The supervisor's start times come from this clock; children are fakes."""
    now = [1000.0]

    def start(self: Supervised) -> FakeProcess:
        self.started_at = now[0]
        return FakeProcess()

    monkeypatch.setattr(Supervised, "_start", start)
    return now


def _crash(child: Supervised, clock: list[float], after: float) -> float | None:
    clock[0] += after
    child.process.returncode = 1
    pause = child.exited(clock[0])
    assert child.exited(clock[0]) is None  # reported once
    return pause


def test_restarts_after_a_healthy_run_and_backs_off_after_quick_failures(
    clock: list[float],
) -> None:
    child = Supervised("api", ["serve"], {})
    first = child.process
    assert child.exited(clock[0]) is None  # running
    assert _crash(child, clock, after=600) == 1.0
    child.restart_if_due(clock[0] + 0.5)
    assert child.process is first  # not yet
    child.restart_if_due(clock[0] + 1.0)
    assert child.process is not first and child.exited(clock[0]) is None

    pauses = []
    for _ in range(Supervised.RESTART_LIMIT):
        pauses.append(_crash(child, clock, after=2))
        assert not child.exhausted
        clock[0] += 20
        child.restart_if_due(clock[0])
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0]
    _crash(child, clock, after=2)
    assert child.exhausted  # a sixth quick failure in a row: dev gives up

    # A healthy run in between resets the count.
    child = Supervised("worker", ["worker"], {})
    for _ in range(3):
        _crash(child, clock, after=2)
        clock[0] += 20
        child.restart_if_due(clock[0])
    assert _crash(child, clock, after=Supervised.HEALTHY_AFTER_SECONDS) == 1.0
    assert child.quick_failures == 0
