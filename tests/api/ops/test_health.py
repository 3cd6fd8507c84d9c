"""/health (draft-inadarei-api-health-check): pass, each warn cause, fail, bounded and cached.

Real Postgres and Redis throughout; a dependency is "stopped" at the network edge only (a port
where nothing listens, or one that accepts and never answers).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.adapters.postgres.tables import tenants
from app.api.state import app_state
from app.services.ops import job_metrics
from app.settings import Settings
from tests.ops_helpers import (
    DEAD_POSTGRES,
    DEAD_REDIS,
    count_lookups,
    count_requests,
    healthy,
    insert_queued,
)

CHECKS = {
    "postgres:responseTime",
    "redis:responseTime",
    "workers:count",
    "workers:throughput",
    "queue:depth",
    "cache:hitRate",
    "api:errorRate",
    "api:responseTime",
    "disk:utilization",
    "memory:utilization",
}
# Every check has its own timeout under a second, and they run concurrently.
BUDGET_SECONDS = 1.5


async def fresh(application: FastAPI, http: AsyncClient) -> Response:
    """GET /health past its one-second cache."""
    app_state(application).health.clear()
    return await http.get("/health")


def document(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/health+json")
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["checks"].keys() == CHECKS
    for entries in body["checks"].values():
        assert len(entries) == 1 and entries[0]["status"] in ("pass", "warn", "fail")
    assert 0.0 <= body["score"] <= 1.0
    return body


def statuses(body: dict[str, Any]) -> dict[str, str]:
    return {name: entries[0]["status"] for name, entries in body["checks"].items()}


def check(body: dict[str, Any], name: str) -> dict[str, Any]:
    entry: dict[str, Any] = body["checks"][name][0]
    return entry


def only_warning(body: dict[str, Any], name: str) -> None:
    """The document warns because of `name` alone."""
    assert body["status"] == "warn"
    expected = {n: "warn" if n == name else "pass" for n in CHECKS}
    assert statuses(body) == expected
    # One warn among passes: a warn costs half a check.
    assert body["score"] == pytest.approx((len(CHECKS) - 0.5) / len(CHECKS), abs=1e-3)


async def test_pass_when_every_dependency_is_fine(settings: Settings, base: dict[str, Any]) -> None:
    async with healthy(settings, **base) as (_, http):
        body = document(await http.get("/health"), 200)
    assert body["status"] == "pass"
    assert body["score"] == 1.0
    assert set(statuses(body).values()) == {"pass"}
    assert check(body, "workers:count")["observedValue"] == 1
    assert check(body, "queue:depth")["observedValue"] == 0
    assert check(body, "postgres:responseTime")["observedUnit"] == "ms"
    assert 0 <= check(body, "postgres:responseTime")["observedValue"] < 1000
    assert 0 < check(body, "disk:utilization")["observedValue"] <= 100
    assert body["serviceId"] == "ledger-incidences"


async def test_warns_without_a_live_worker(settings: Settings, base: dict[str, Any]) -> None:
    async with healthy(settings, worker=False, **base) as (_, http):
        body = document(await http.get("/health"), 200)
    only_warning(body, "workers:count")
    assert check(body, "workers:count")["observedValue"] == 0
    assert check(body, "workers:count")["output"] == (
        "No live worker: iterations wait; start one: `ledger-incidences worker`."
    )


async def test_warns_when_redis_is_down(settings: Settings, base: dict[str, Any]) -> None:
    async with healthy(settings, worker=False, **{**base, "redis_url": DEAD_REDIS}) as (_, http):
        started = time.perf_counter()
        body = document(await http.get("/health"), 200)
        elapsed = time.perf_counter() - started
    assert body["status"] == "warn"
    assert statuses(body)["redis:responseTime"] == "warn"
    assert statuses(body)["workers:count"] == "warn"  # unknown without Redis
    assert statuses(body)["postgres:responseTime"] == "pass"
    assert "redis-secret-pw" not in str(body) and "127.0.0.1" not in str(body)
    assert elapsed < BUDGET_SECONDS
    assert check(body, "redis:responseTime")["output"] == (
        "Redis unreachable: snapshots are read from Postgres and rate limits are not enforced. "
        "Check the Redis server and REDIS_URL."
    )
    assert check(body, "workers:throughput")["output"] == "Unknown: Redis unreachable."


async def test_warns_above_the_queue_depth_threshold(
    settings: Settings, base: dict[str, Any]
) -> None:
    threshold = 3
    async with healthy(settings, **base, health_queue_warn_depth=threshold) as (application, http):
        engine = app_state(application).resources.engine
        tenant = await insert_queued(engine, threshold)
        try:
            at_threshold = document(await fresh(application, http), 200)
            await insert_queued(engine, 1)
            above = document(await fresh(application, http), 200)
        finally:
            async with engine.begin() as conn:  # closings, ledgers, iterations cascade
                await conn.execute(sa.delete(tenants).where(tenants.c.name.like("health-%")))
    assert tenant is not None
    assert at_threshold["status"] == "pass"
    assert check(at_threshold, "queue:depth")["observedValue"] == threshold
    only_warning(above, "queue:depth")
    assert check(above, "queue:depth")["observedValue"] == threshold + 1
    assert check(above, "queue:depth")["output"] == (
        "Backlog: 4 iterations queued, more than 3. Start more workers "
        "(`ledger-incidences worker`) or raise their WORKER_MAX_JOBS."
    )


async def test_warns_on_a_low_cache_hit_rate_once_enough_reads_were_seen(
    settings: Settings, base: dict[str, Any]
) -> None:
    min_reads = 40
    async with healthy(settings, **base, health_cache_min_reads=min_reads) as (application, http):
        first = document(await fresh(application, http), 200)  # the window starts here
        count_lookups(hits=5, misses=min_reads - 10)  # a bad rate, but too few reads to judge
        too_few = document(await fresh(application, http), 200)
        count_lookups(hits=5, misses=0)  # now 10 hits of 40 reads: 25%
        low = document(await fresh(application, http), 200)
        count_lookups(hits=200, misses=0)  # 210 of 240: 87.5%
        recovered = document(await fresh(application, http), 200)
    assert first["status"] == too_few["status"] == "pass"
    assert "too few" in check(too_few, "cache:hitRate")["output"]
    only_warning(low, "cache:hitRate")
    assert check(low, "cache:hitRate")["observedValue"] == 25.0
    assert check(low, "cache:hitRate")["observedUnit"] == "percent"
    assert check(low, "cache:hitRate")["output"] == (
        "Hit rate 25.0% is under 70%: warm the cache with `ledger-incidences cache warm`."
    )
    assert recovered["status"] == "pass"
    assert check(recovered, "cache:hitRate")["observedValue"] == round(210 / 240 * 100, 1)


async def test_warns_above_five_percent_of_api_requests_answered_5xx(
    settings: Settings, base: dict[str, Any]
) -> None:
    route = "/api/v1/test-health-errors"
    async with healthy(settings, **base) as (application, http):
        idle = document(await fresh(application, http), 200)
        count_requests(route, ok=19, failed=1)  # 1 of 20: 5%, not above
        count_requests("/alive", ok=0, failed=50)  # probes are not API traffic
        at_limit = document(await fresh(application, http), 200)
        count_requests(route, ok=0, failed=1)  # 2 of 21: 9.5%
        above = document(await fresh(application, http), 200)
    assert check(idle, "api:errorRate")["observedValue"] == 0.0
    assert check(idle, "api:errorRate")["output"] == "no API request in the last 5 minutes"
    assert at_limit["status"] == "pass"
    assert check(at_limit, "api:errorRate")["observedValue"] == 5.0
    only_warning(above, "api:errorRate")
    assert check(above, "api:errorRate")["observedValue"] == 9.5
    assert check(above, "api:errorRate")["output"] == (
        "2 of 21 API requests in the last 5 minutes answered 5xx (9.5%, above 5%): check "
        "Postgres and Redis, and the API's error log (each line carries its request id)."
    )


async def test_reports_latency_and_throughput(settings: Settings, base: dict[str, Any]) -> None:
    async with healthy(settings, **base) as (application, http):
        resources = app_state(application).resources
        for movements in (600, 300):  # two iterations that just succeeded
            await job_metrics.add(
                resources.redis, base["redis_key_prefix"], "succeeded", 2, movements
            )
        # 19 answers in 4 ms and one in 2 s: the 95th (the 19th of 20) is at the top of the
        # 2.5-5 ms bucket, the Prometheus way.
        count_requests("/api/v1/test-health-latency", ok=19, failed=0)
        count_requests("/api/v1/test-health-latency", ok=1, failed=0, seconds=2.0)
        body = document(await fresh(application, http), 200)
    assert body["status"] == "pass"
    latency = check(body, "api:responseTime")
    assert (latency["observedValue"], latency["observedUnit"]) == (5.0, "ms")
    throughput = check(body, "workers:throughput")
    assert throughput["observedUnit"] == "per minute"
    # 900 movements and 2 iterations over 4 to 5 minutes, by the second of the minute.
    assert 900 / 5 <= throughput["observedValue"]["movements_per_minute"] <= 900 / 4
    assert 2 / 5 <= throughput["observedValue"]["iterations_per_minute"] <= 2 / 4


@pytest.mark.parametrize("resource", ["disk", "memory"])
async def test_warns_when_disk_or_memory_is_over_its_threshold(
    settings: Settings, base: dict[str, Any], resource: str
) -> None:
    # Any real usage is above 0.1%: the host's own measurement, judged by a tight threshold.
    update = {**base, f"health_{resource}_warn_percent": 0.1}
    async with healthy(settings, **update) as (_, http):
        body = document(await http.get("/health"), 200)
    only_warning(body, f"{resource}:utilization")
    assert check(body, f"{resource}:utilization")["observedValue"] > 0.1


@pytest.fixture(scope="module")
def blackhole() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never says a word."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


@pytest.mark.parametrize("how", ["refused", "blackholed"])
async def test_fails_with_503_when_postgres_is_down(
    settings: Settings, base: dict[str, Any], blackhole: int, how: str
) -> None:
    dead = (
        DEAD_POSTGRES
        if how == "refused"
        else f"postgresql+asyncpg://postgres@127.0.0.1:{blackhole}/ledger"
    )
    async with healthy(settings, **{**base, "database_url": dead}) as (_, http):
        started = time.perf_counter()
        body = document(await http.get("/health"), 503)
        elapsed = time.perf_counter() - started
    assert body["status"] == "fail"
    assert body["score"] == 0.0
    assert statuses(body)["postgres:responseTime"] == "fail"
    assert statuses(body)["queue:depth"] == "warn"  # unknown without Postgres
    assert statuses(body)["redis:responseTime"] == "pass"
    assert "pg-secret-pw" not in str(body) and "127.0.0.1" not in str(body)
    assert elapsed < BUDGET_SECONDS, f"/health took {elapsed:.2f}s"


async def test_every_check_is_bounded_with_both_datastores_blackholed(
    settings: Settings, base: dict[str, Any], blackhole: int
) -> None:
    update = {
        **base,
        "database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{blackhole}/ledger",
        "redis_url": f"redis://127.0.0.1:{blackhole}/0",
    }
    async with healthy(settings, worker=False, **update) as (_, http):
        started = time.perf_counter()
        body = document(await http.get("/health"), 503)
        elapsed = time.perf_counter() - started
    assert elapsed < BUDGET_SECONDS, f"/health took {elapsed:.2f}s"
    assert check(body, "postgres:responseTime")["output"].startswith("Postgres timed out: ")
    assert check(body, "redis:responseTime")["output"].startswith("Redis timed out: ")


async def test_result_is_cached_about_a_second_and_probes_share_one_computation(
    settings: Settings, base: dict[str, Any]
) -> None:
    async with healthy(settings, **base) as (application, http):
        app_state(application).health.clear()
        burst = await asyncio.gather(*(http.get("/health") for _ in range(20)))
        again = await http.get("/health")
        await asyncio.sleep(1.1)
        later = await http.get("/health")
    bodies = {response.text for response in [*burst, again]}
    assert len(bodies) == 1, "concurrent probes computed the document more than once"
    assert later.text != again.text  # every check carries its own time: a new computation
