"""`ledger-incidences monitor` against an app served over HTTP: its JSON under each induced
warning carries /health's recommendation, it exits 1 on `fail` (2 without an API), and --watch
refreshes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.adapters.postgres.tables import tenants
from app.api.state import app_state
from app.cli.main import build_parser
from app.metrics import HTTP_REQUESTS
from app.settings import Settings
from tests.e2e.conftest import clean_env, free_port
from tests.ops_helpers import (
    DEAD_POSTGRES,
    count_lookups,
    count_requests,
    healthy,
    insert_queued,
    served,
)

Induce = Callable[[FastAPI], Awaitable[None]]


async def run_monitor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the command as the CLI parses it (in a thread: the app serves in this loop)."""
    parsed = build_parser().parse_args(["monitor", *args])
    capsys.readouterr()
    code: int = await asyncio.to_thread(parsed.handler, None, parsed)
    return code, capsys.readouterr().out


def health_requests() -> float:
    return sum(
        sample.value
        for family in HTTP_REQUESTS.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["route"] == "/health"
    )


async def nothing(application: FastAPI) -> None:
    """No live worker: `healthy(worker=False)` does it."""


async def backlog(application: FastAPI) -> None:
    await insert_queued(app_state(application).require_resources().engine, 2)


async def low_hit_rate(application: FastAPI) -> None:
    count_lookups(hits=1, misses=3)


async def errors(application: FastAPI) -> None:
    count_requests("/api/v1/test-monitor-errors", ok=3, failed=1)


# What each cause of warning induces, the settings that make it one, and the recommendation.
WARNINGS: dict[str, tuple[Induce, dict[str, Any], str, str]] = {
    "no worker": (
        nothing,
        {},
        "workers:count",
        "No live worker: iterations wait; start one: `ledger-incidences worker`.",
    ),
    "backlog": (
        backlog,
        {"health_queue_warn_depth": 1},
        "queue:depth",
        "Backlog: 2 iterations queued, more than 1. Start more workers "
        "(`ledger-incidences worker`) or raise their WORKER_MAX_JOBS.",
    ),
    "low hit rate": (
        low_hit_rate,
        {"health_cache_min_reads": 4},
        "cache:hitRate",
        "Hit rate 25.0% is under 70%: warm the cache with `ledger-incidences cache warm`.",
    ),
    "errors": (
        errors,
        {},
        "api:errorRate",
        "1 of 4 API requests in the last 5 minutes answered 5xx (25.0%, above 5%): check "
        "Postgres and Redis, and the API's error log (each line carries its request id).",
    ),
}


@pytest.mark.parametrize("cause", WARNINGS)
async def test_json_shows_each_warning_with_the_recommendation_of_health(
    settings: Settings, base: dict[str, Any], capsys: pytest.CaptureFixture[str], cause: str
) -> None:
    induce, update, name, recommendation = WARNINGS[cause]
    worker = cause != "no worker"
    async with healthy(settings, worker=worker, **base, **update) as (application, http):
        await induce(application)
        try:
            async with served(application) as url:
                code, out = await run_monitor(capsys, "--json", "--url", url)
            health = (await http.get("/health")).json()  # the same (memoized) document
        finally:
            async with app_state(application).require_resources().engine.begin() as conn:
                await conn.execute(sa.delete(tenants).where(tenants.c.name.like("health-%")))
    assert code == 0  # a warning is no failure
    document = json.loads(out)
    assert (document["status"], document["score"]) == ("warn", health["score"])
    assert document["recommendations"] == [
        {"check": name, "status": "warn", "recommendation": recommendation}
    ]
    assert health["checks"][name][0]["output"] == recommendation
    assert document["checks"].keys() == health["checks"].keys()
    assert document["live_workers"] == (1 if worker else 0)
    assert document["queue_depth"] == (2 if cause == "backlog" else 0)
    assert document["cache_hit_rate_percent"] == (25.0 if cause == "low hit rate" else None)
    assert document["error_rate_percent"] == (25.0 if cause == "errors" else 0.0)
    # 4 answers in 4 ms: rank 3.8 of the 2.5-5 ms bucket, 2.5 + 2.5 × 3.8 / 4 = 4.875 ms.
    assert document["latency_p95_ms"] == (4.9 if cause == "errors" else None)
    assert document["throughput"] == {"movements_per_minute": 0.0, "iterations_per_minute": 0.0}


async def test_the_terminal_view_shows_the_score_figures_and_recommendations(
    settings: Settings, base: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        healthy(settings, worker=False, **base) as (application, _),
        served(application) as url,
    ):
        code, out = await run_monitor(capsys, "--url", url)
    text = " ".join(out.split())  # rich wraps the table to the terminal's width
    assert code == 0
    assert "Ledger Incidences WARN score 0.95" in text
    assert "queue 0 · workers 0 · 0 movements/min · 0 iterations/min" in text
    assert "→ workers:count: No live worker: iterations wait; start one: `ledger-incidences" in text


async def test_exits_1_when_the_status_is_fail_and_2_without_an_api(
    settings: Settings, base: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    dead = {**base, "database_url": DEAD_POSTGRES}
    async with healthy(settings, **dead) as (application, _), served(application) as url:
        # The real command, its URL from the environment as `upload` takes it.
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "app.cli", "monitor", "--json"),
            env=clean_env(LEDGER_INCIDENCES_URL=url),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1, err.decode()
    document = json.loads(out)
    assert (document["status"], document["score"]) == ("fail", 0.0)
    assert {"check": "postgres:responseTime", "status": "fail"}.items() <= document[
        "recommendations"
    ][0].items()
    assert "Check the database server and DATABASE_URL" in out.decode()
    assert "pg-secret-pw" not in out.decode()

    nobody = f"http://127.0.0.1:{free_port()}"
    code, out = await run_monitor(capsys, "--json", "--url", nobody)
    assert (code, out) == (2, "")


async def test_watch_refreshes_until_its_count(
    settings: Settings, base: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    async with healthy(settings, **base) as (application, _), served(application) as url:
        before = health_requests()
        code, out = await run_monitor(
            capsys, "--watch", "--json", "--interval", "0.05", "--count", "3", "--url", url
        )
        assert health_requests() - before == 3
        assert code == 0
        assert [json.loads(line)["status"] for line in out.splitlines()] == ["pass"] * 3

        before = health_requests()
        code, out = await run_monitor(
            capsys, "--watch", "--interval", "0.05", "--count", "2", "--url", url
        )
        assert health_requests() - before == 2
        assert code == 0 and "Ledger Incidences PASS" in out
