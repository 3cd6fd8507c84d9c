"""A real uvicorn process (`ledger-incidences serve`): readiness and the SIGTERM drain."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from app.settings import Settings
from tests.e2e.conftest import running_server

DRAIN_SECONDS = 2


def test_sigterm_drains_then_exits_cleanly(settings: Settings, tmp_path: Path) -> None:
    with running_server(settings, tmp_path, SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS)) as (
        base,
        child,
    ):
        assert httpx.get(f"{base}/alive", timeout=2).status_code == 200

        child.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        # From the signal on, /ready answers 503 (load balancers stop routing here) while
        # the process still serves: /alive answers 200 during the whole drain.
        seen_not_ready = seen_alive = 0
        while time.monotonic() - signalled < DRAIN_SECONDS - 0.5:
            ready = httpx.get(f"{base}/ready", timeout=1)
            assert ready.status_code == 503, ready.text
            assert ready.headers["content-type"].startswith("application/problem+json")
            assert ready.json()["status"] == 503
            seen_not_ready += 1
            alive = httpx.get(f"{base}/alive", timeout=1)
            assert alive.status_code == 200
            seen_alive += 1
            time.sleep(0.1)
        assert seen_not_ready >= 3 and seen_alive >= 3

        returncode = child.process.wait(timeout=DRAIN_SECONDS + 20)
        assert returncode == 0, child.output()
        elapsed = time.monotonic() - signalled
        assert elapsed >= DRAIN_SECONDS - 0.2, f"stopped after {elapsed:.2f}s, before the drain"


def _api_processes(parent: int) -> list[int]:
    """The pids of the `serve` children of `parent`."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [
        int(pid) for pid in children if b"--listen-fd" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_several_api_processes_share_the_port_sum_their_metrics_and_stop_together(
    settings: Settings, tmp_path: Path
) -> None:
    with running_server(
        settings, tmp_path, WEB_CONCURRENCY="2", SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS)
    ) as (base, child):
        processes = _api_processes(child.process.pid)
        assert len(processes) == 2, child.output()
        # Each request on a connection of its own: the kernel hands them to either process,
        # and /metrics (answered by either) counts every one exactly once.
        requests = 40
        for _ in range(requests):
            assert httpx.get(f"{base}/alive", timeout=2).status_code == 200
        exposition = httpx.get(f"{base}/metrics", timeout=5).text
        counted = [
            line
            for line in exposition.splitlines()
            if line.startswith("ledger_http_requests_total{") and 'route="/alive"' in line
        ]
        assert len(counted) == 1 and float(counted[0].rsplit(" ", 1)[1]) == requests, counted

        child.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert httpx.get(f"{base}/ready", timeout=1).status_code == 503  # both drain
        assert child.process.wait(timeout=DRAIN_SECONDS + 20) == 0, child.output()
        for pid in processes:  # none is left behind
            assert (
                not Path(f"/proc/{pid}").exists()
                or b"zombie" in Path(f"/proc/{pid}/status").read_bytes().lower()
            )
