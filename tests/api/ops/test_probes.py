"""/alive, /ready and /health (SPEC §8) against real, missing, blackholed and unmigrated servers."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from pydantic import SecretStr

from app.adapters.redis import heartbeat
from app.api.routes import probes as probes_route
from app.api.state import app_state
from app.main import create_app
from app.settings import Settings
from tests.conftest import Databases

# Nothing listens on port 1 of loopback: connections are refused at once.
DEAD_POSTGRES = "postgresql+asyncpg://postgres:pg-secret-pw@127.0.0.1:1/ledger"
DEAD_REDIS = "redis://:redis-secret-pw@127.0.0.1:1/0"

# Under 1 s even when a dependency never answers: the probe timeout bounds every check.
READY_BUDGET_SECONDS = 1.0


@asynccontextmanager
async def app_client(
    settings: Settings, **update: Any
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """A separate application (own lifespan and pools) for the settings with `update` applied,
    and a client talking to it."""
    for name in ("database_url", "redis_url", "bootstrap_api_key"):
        if isinstance(update.get(name), str):
            update[name] = SecretStr(update[name])
    application = create_app(settings.model_copy(update=update))
    async with (
        LifespanManager(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as http,
    ):
        yield application, http


@pytest.fixture(scope="module")
def blackhole() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never says a word."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)  # the kernel completes handshakes; nobody ever reads or answers
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


async def timed_get(http: AsyncClient, path: str) -> tuple[Response, float]:
    started = time.perf_counter()
    response = await http.get(path)
    return response, time.perf_counter() - started


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= body.keys()
    return body


# --- /alive ------------------------------------------------------------------------------------


async def test_alive_answers_with_every_dependency_unreachable(settings: Settings) -> None:
    async with app_client(settings, database_url=DEAD_POSTGRES, redis_url=DEAD_REDIS) as (_, http):
        response, elapsed = await timed_get(http, "/alive")
    assert response.status_code == 200
    assert elapsed < 0.5


# --- /ready ------------------------------------------------------------------------------------


async def test_ready_when_everything_answers(client: AsyncClient) -> None:
    response, elapsed = await timed_get(client, "/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"postgres": "ok", "redis": "ok"}
    assert elapsed < READY_BUDGET_SECONDS


async def test_ready_503_when_postgres_is_unreachable(settings: Settings) -> None:
    async with app_client(settings, database_url=DEAD_POSTGRES) as (_, http):
        response, elapsed = await timed_get(http, "/ready")
    body = assert_problem(response, 503)
    assert body["checks"] == {"postgres": "down", "redis": "ok"}
    assert elapsed < READY_BUDGET_SECONDS


async def test_ready_503_when_redis_is_unreachable(settings: Settings) -> None:
    async with app_client(settings, redis_url=DEAD_REDIS) as (_, http):
        response, elapsed = await timed_get(http, "/ready")
    body = assert_problem(response, 503)
    assert body["checks"] == {"postgres": "ok", "redis": "down"}
    assert elapsed < READY_BUDGET_SECONDS


async def test_ready_503_when_the_schema_is_not_at_the_head(
    settings: Settings, databases: Databases
) -> None:
    empty = await databases.create("unmigrated")
    async with app_client(settings, database_url=empty) as (_, http):
        response = await http.get("/ready")
    body = assert_problem(response, 503)
    assert body["checks"]["postgres"] == "migration_pending"


async def test_ready_503_while_shutting_down(settings: Settings) -> None:
    async with app_client(settings) as (application, http):
        assert (await http.get("/ready")).status_code == 200
        app_state(application).draining = True  # what the server does on SIGTERM
        response = await http.get("/ready")
        alive = await http.get("/alive")
    assert_problem(response, 503)
    assert alive.status_code == 200


async def test_a_flood_of_ready_probes_checks_the_dependencies_once_a_second(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = 0
    real = probes_route.check_readiness

    async def counted(*args: Any) -> Any:
        nonlocal checks
        checks += 1
        return await real(*args)

    monkeypatch.setattr(probes_route, "check_readiness", counted)
    async with app_client(settings) as (application, http):
        answers = await asyncio.gather(*(http.get("/ready") for _ in range(50)))
        assert {a.status_code for a in answers} == {200} and checks == 1
        await asyncio.sleep(1.1)
        assert (await http.get("/ready")).status_code == 200 and checks == 2
        # Shutting down is said at once, whatever was memoized.
        app_state(application).draining = True
        assert_problem(await http.get("/ready"), 503)


@pytest.mark.parametrize("which", ["postgres", "redis", "both"])
async def test_ready_is_fast_with_a_blackholed_dependency(
    settings: Settings, blackhole: int, which: str
) -> None:
    # Each check gives up after 0.2 s, well inside the budget: an answer that waited for a
    # connect timeout (5 s) fails, a pause of the suite's own process (CI's second pass saw
    # 1.02 and 1.13 s with 0.5 s checks that run concurrently) does not.
    update: dict[str, Any] = {"probe_timeout_seconds": 0.2}
    if which in ("postgres", "both"):
        update["database_url"] = f"postgresql+asyncpg://postgres@127.0.0.1:{blackhole}/ledger"
    if which in ("redis", "both"):
        update["redis_url"] = f"redis://127.0.0.1:{blackhole}/0"
    async with app_client(settings, **update) as (_, http):
        gc.collect()  # the garbage of the tests before this one is not the probe's time
        for _ in range(2):  # the second call must not be stuck behind the first one's attempt
            response, elapsed = await timed_get(http, "/ready")
            assert_problem(response, 503)
            assert elapsed < READY_BUDGET_SECONDS, f"/ready took {elapsed:.2f}s"


# --- /health -----------------------------------------------------------------------------------

CHECK_KEYS = {
    "postgres:responseTime",
    "redis:responseTime",
    "workers:count",
    "disk:utilization",
    "memory:utilization",
}


def secrets_of(settings: Settings) -> list[str]:
    """Strings that must never appear in a /health body: URLs, socket paths, passwords."""
    assert settings.database_url is not None and settings.redis_url is not None
    values = [settings.database_url.get_secret_value(), settings.redis_url.get_secret_value()]
    found = ["postgresql", "redis://", "unix://", str(settings.data_dir)]
    for value in values:
        found.append(value)
        parts = urlsplit(value)
        if parts.password:
            found.append(parts.password)
        if parts.path and parts.path.endswith(".sock"):
            found.append(parts.path)
        found.extend(parse_qs(parts.query).get("host", []))  # Postgres socket directory
    return found


def assert_health(response: Response, settings: Settings) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/health+json")
    body: dict[str, Any] = response.json()
    assert body["checks"].keys() >= CHECK_KEYS
    for entries in body["checks"].values():
        assert isinstance(entries, list) and entries
        assert all(entry["status"] in ("pass", "warn", "fail") for entry in entries)
    text = response.text
    for secret in secrets_of(settings):
        assert secret not in text, f"/health exposes {secret!r}"
    return body


def status_of(body: dict[str, Any], check: str) -> str:
    status: str = body["checks"][check][0]["status"]
    return status


@pytest.fixture
def health_prefix(settings: Settings) -> str:
    """A key prefix of its own (under the suite's prefix) so no other test's worker is seen."""
    return f"{settings.redis_key_prefix}-health-{time.monotonic_ns()}"


async def test_health_warns_without_a_worker_heartbeat(
    settings: Settings, health_prefix: str
) -> None:
    async with app_client(settings, redis_key_prefix=health_prefix) as (_, http):
        response = await http.get("/health")
    assert response.status_code == 200
    body = assert_health(response, settings)
    assert body["status"] == "warn"
    assert status_of(body, "postgres:responseTime") == "pass"
    assert status_of(body, "redis:responseTime") == "pass"
    assert status_of(body, "workers:count") == "warn"
    assert body["checks"]["workers:count"][0]["observedValue"] == 0


async def test_health_counts_live_workers(settings: Settings, health_prefix: str) -> None:
    async with app_client(settings, redis_key_prefix=health_prefix) as (application, http):
        redis = app_state(application).resources.redis
        await heartbeat.beat(redis, health_prefix, "probe-test-worker")
        try:
            response = await http.get("/health")
        finally:
            await heartbeat.forget(redis, health_prefix, "probe-test-worker")
    assert response.status_code == 200
    body = assert_health(response, settings)
    assert body["status"] in ("pass", "warn")  # disk or memory may be near full on this host
    assert status_of(body, "workers:count") == "pass"
    assert body["checks"]["workers:count"][0]["observedValue"] == 1


async def test_health_fails_with_503_when_postgres_is_unreachable(settings: Settings) -> None:
    async with app_client(settings, database_url=DEAD_POSTGRES) as (_, http):
        response = await http.get("/health")
    assert response.status_code == 503
    dead = settings.model_copy(update={"database_url": SecretStr(DEAD_POSTGRES)})
    body = assert_health(response, dead)
    assert secrets_of(settings)[0] not in response.text
    assert body["status"] == "fail"
    assert status_of(body, "postgres:responseTime") == "fail"


async def test_health_warns_when_redis_is_unreachable(settings: Settings) -> None:
    async with app_client(settings, redis_url=DEAD_REDIS) as (_, http):
        response, elapsed = await timed_get(http, "/health")
    assert response.status_code == 200
    dead = settings.model_copy(update={"redis_url": SecretStr(DEAD_REDIS)})
    body = assert_health(response, dead)
    assert body["status"] == "warn"
    assert status_of(body, "redis:responseTime") == "warn"
    assert status_of(body, "postgres:responseTime") == "pass"
    assert elapsed < 2 * READY_BUDGET_SECONDS


async def test_health_of_the_suite_app_hides_connection_details(
    client: AsyncClient, settings: Settings
) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = assert_health(response, settings)
    assert body["status"] in ("pass", "warn")


def test_secret_list_covers_the_suite_servers(settings: Settings) -> None:
    """Guard for the assertions above: the list really holds the URLs and socket paths."""
    found = secrets_of(settings)
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() in found
    if settings.redis_url.get_secret_value().startswith("unix://"):
        assert any(value.endswith(".sock") for value in found)
