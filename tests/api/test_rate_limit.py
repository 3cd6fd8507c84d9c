"""Sliding-window rate limits (SPEC §7): exactness, concurrency, replicas, fail-open."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from pydantic import SecretStr
from redis.asyncio import Redis

from app.adapters.redis import REDIS_FAILURES, rate_limit
from app.adapters.redis.rate_limit import CheckBatcher, WindowCheck, check_all, window_check
from app.api.middleware.rate_limit import Breaker
from app.api.state import app_state
from app.main import create_app
from app.metrics import REGISTRY
from app.services.tenancy import api_keys
from app.settings import RatePolicy, Settings
from tests.conftest import KeyMaker, Servers, bearer
from tests.helpers import assert_problem

CLIENTS = "/api/v1/clients"
HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def limited(settings: Settings, redis_prefix: str, **update: Any) -> Settings:
    """The suite's settings with the given limits and a Redis prefix of their own."""
    prefix = f"{redis_prefix}:rl-{secrets.token_hex(3)}"
    return settings.model_copy(update={"redis_key_prefix": prefix, **update})


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[AsyncClient]:
    """A fresh app with these settings, and an ASGI client to it."""
    application = create_app(settings)
    async with (
        LifespanManager(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as http,
    ):
        yield http


def limit_headers(response: Response) -> tuple[int, int, int]:
    return tuple(int(response.headers[name]) for name in HEADERS)  # type: ignore[return-value]


async def redis_now(servers: Servers) -> float:
    client = Redis.from_url(servers.redis_url)
    try:
        seconds, micros = await client.time()
    finally:
        await client.aclose()
    return seconds + micros / 1e6


def free_port() -> int:
    """A loopback TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fail_open_total() -> float:
    return REGISTRY.get_sample_value("ledger_rate_limit_fail_open_total") or 0.0


# --- headers and 429 ---------------------------------------------------------------------------


async def test_headers_count_down_then_429_with_retry_after(
    settings: Settings, redis_prefix: str, make_key: KeyMaker
) -> None:
    key = await make_key("viewer")
    async with serve(limited(settings, redis_prefix, rate_limit_read="5/60")) as http:
        seen = [limit_headers(await http.get(CLIENTS, headers=bearer(key))) for _ in range(5)]
        refused = await http.get(CLIENTS, headers=bearer(key))
    assert [remaining for _, remaining, _ in seen] == [4, 3, 2, 1, 0]
    assert all(limit == 5 for limit, _, _ in seen)
    # Reset: seconds until one more request is allowed: 0 while some remain.
    assert [reset for _, _, reset in seen[:4]] == [0, 0, 0, 0]
    assert 59 <= seen[4][2] <= 60
    body = assert_problem(refused, 429)
    assert body["type"].endswith("rate-limited")
    limit, remaining, reset = limit_headers(refused)
    assert (limit, remaining) == (5, 0) and 59 <= reset <= 60
    assert int(refused.headers["retry-after"]) == reset


async def test_a_burst_across_a_fixed_window_boundary_is_refused(
    settings: Settings, redis_prefix: str, servers: Servers, make_key: KeyMaker
) -> None:
    """5/2 s: a fixed window aligned on even seconds would admit 5 just before a boundary and 5
    more just after it; the sliding window refuses the second burst."""
    key = await make_key("viewer")
    async with serve(limited(settings, redis_prefix, rate_limit_read="5/2")) as http:
        now = await redis_now(servers)
        boundary = math.ceil(now / 2) * 2
        if boundary - now < 0.6:
            boundary += 2
        await asyncio.sleep(boundary - now - 0.35)
        before = await asyncio.gather(*(http.get(CLIENTS, headers=bearer(key)) for _ in range(5)))
        await asyncio.sleep(max(0.0, boundary + 0.1 - await redis_now(servers)))
        after = await asyncio.gather(*(http.get(CLIENTS, headers=bearer(key)) for _ in range(5)))
        assert [r.status_code for r in before] == [200] * 5
        assert [r.status_code for r in after] == [429] * 5
        # Waiting X-RateLimit-Reset seconds is enough for one more request.
        reset = int(after[-1].headers["x-ratelimit-reset"])
        assert 1 <= reset <= 2
        await asyncio.sleep(reset)
        again = await http.get(CLIENTS, headers=bearer(key))
        assert again.status_code == 200, again.text


async def test_200_concurrent_requests_against_a_limit_of_50_let_exactly_50_through(
    settings: Settings, redis_prefix: str, make_key: KeyMaker
) -> None:
    key = await make_key("viewer")  # never seen by this app: its validity is looked up once
    async with serve(limited(settings, redis_prefix, rate_limit_read="50/60")) as http:
        responses = await asyncio.gather(
            *(http.get(CLIENTS, headers=bearer(key)) for _ in range(200))
        )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 50, 429: 150}
    assert sorted(int(r.headers["x-ratelimit-remaining"]) for r in responses)[150:] == list(
        range(50)
    )


async def test_two_app_instances_on_one_redis_share_the_limit(
    settings: Settings, redis_prefix: str, make_key: KeyMaker
) -> None:
    key = await make_key("viewer")
    shared = limited(settings, redis_prefix, rate_limit_read="6/60")
    async with serve(shared) as first, serve(shared) as second:
        responses = await asyncio.gather(
            *(http.get(CLIENTS, headers=bearer(key)) for http in [first, second] * 10)
        )
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 6, 429: 14}
        for http in (first, second):
            assert (await http.get(CLIENTS, headers=bearer(key))).status_code == 429


# --- policies and subjects ---------------------------------------------------------------------


async def test_writes_and_uploads_have_their_own_policies(
    settings: Settings, redis_prefix: str, make_key: KeyMaker
) -> None:
    key = await make_key("analyst")
    limits = {"rate_limit_read": "100/60", "rate_limit_write": "2/60", "rate_limit_upload": "1/60"}
    async with serve(limited(settings, redis_prefix, **limits)) as http:
        writes = [
            await http.post(CLIENTS, json={"name": f"c{i}"}, headers=bearer(key)) for i in range(3)
        ]
        assert [r.status_code for r in writes] == [201, 201, 429]
        assert writes[2].headers["x-ratelimit-limit"] == "2"
        read = await http.get(CLIENTS, headers=bearer(key))
        assert read.status_code == 200 and read.headers["x-ratelimit-limit"] == "100"
        ledger = f"/api/v1/closings/{uuid.uuid4()}/ledger"
        uploads = [
            await http.post(ledger, files={"file": ("l.csv", b"x")}, headers=bearer(key))
            for _ in range(2)
        ]
        # The first is counted (and answered 404: no such closing), the second is refused.
        assert [r.status_code for r in uploads] == [404, 429]
        assert uploads[1].headers["x-ratelimit-limit"] == "1"


async def test_failed_authentication_is_limited_by_the_anonymous_policy(
    settings: Settings, redis_prefix: str, make_key: KeyMaker
) -> None:
    valid = await make_key("viewer")
    async with serve(limited(settings, redis_prefix, rate_limit_anon="3/60")) as http:
        first = [
            await http.get(CLIENTS),
            await http.get(CLIENTS, headers=bearer("li_" + secrets.token_urlsafe(32))),
            await http.get(CLIENTS, headers={"Authorization": f"Basic {valid}"}),
        ]
        assert [r.status_code for r in first] == [401, 401, 401]
        assert [r.headers["x-ratelimit-remaining"] for r in first] == ["2", "1", "0"]
        guess = await http.get(CLIENTS, headers=bearer("li_" + secrets.token_urlsafe(32)))
        assert_problem(guess, 429)
        assert_problem(await http.get(CLIENTS), 429)
        # A valid key from the same IP counts against its own limit, not the IP's.
        own = await http.get(CLIENTS, headers=bearer(valid))
        assert own.status_code == 200 and own.headers["x-ratelimit-limit"] == "1200"


async def test_a_revoked_key_counts_as_anonymous(
    app: FastAPI, settings: Settings, redis_prefix: str, make_key: KeyMaker
) -> None:
    key = await make_key("viewer", name="to-revoke")
    update = {"rate_limit_anon": "1/60", "auth_cache_ttl_seconds": 0}  # revocation bites at once
    async with serve(limited(settings, redis_prefix, **update)) as http:
        # A first connection for the fresh app's pool (probes are never counted): on a cold
        # pool the limiter's key lookup may give up (1 s) and count the first request as
        # anonymous, using up the budget this test counts on.
        assert (await http.get("/ready")).status_code == 200
        assert (await http.get(CLIENTS, headers=bearer(key))).status_code == 200
        async with app_state(app).resources.engine.begin() as conn:
            principal = await api_keys.authenticate(conn, key)
            assert principal is not None
            assert await api_keys.revoke_key(conn, principal.key_id)
        # Counted against the key once more (it was live a moment ago); the 401 tells the
        # limiter, and from then on the key is an anonymous caller.
        refused = [await http.get(CLIENTS, headers=bearer(key)) for _ in range(3)]
    assert [r.status_code for r in refused] == [401, 401, 429]
    assert [r.headers["x-ratelimit-limit"] for r in refused] == ["1200", "1", "1"]


async def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    settings: Settings, redis_prefix: str
) -> None:
    def via(ip: str) -> dict[str, str]:
        return {"X-Forwarded-For": f"6.6.6.6, {ip}"}  # the left hop is the client's own claim

    untrusted = limited(settings, redis_prefix, rate_limit_anon="1/60")
    async with serve(untrusted) as http:
        assert (await http.get(CLIENTS, headers=via("10.0.0.1"))).status_code == 401
        assert (await http.get(CLIENTS, headers=via("10.0.0.2"))).status_code == 429
    trusted = limited(settings, redis_prefix, rate_limit_anon="1/60", trusted_proxies="127.0.0.0/8")
    async with serve(trusted) as http:
        assert (await http.get(CLIENTS, headers=via("10.0.0.1"))).status_code == 401
        assert (await http.get(CLIENTS, headers=via("10.0.0.2"))).status_code == 401
        assert (await http.get(CLIENTS, headers=via("10.0.0.1"))).status_code == 429
        spoofed = {"X-Forwarded-For": "10.0.0.99, 10.0.0.2"}
        assert (await http.get(CLIENTS, headers=spoofed)).status_code == 429


async def test_probes_and_metrics_are_never_limited(settings: Settings, redis_prefix: str) -> None:
    async with serve(limited(settings, redis_prefix, rate_limit_anon="1/60")) as http:
        for path in ("/alive", "/ready", "/health", "/metrics") * 3:
            response = await http.get(path)
            assert response.status_code != 429, path
            assert not set(HEADERS) & set(response.headers), path
        assert (await http.get(CLIENTS)).status_code == 401
        assert (await http.get("/openapi.json")).status_code == 429


# --- Redis: script cache and outage ------------------------------------------------------------


async def test_a_batch_counts_in_order_and_survives_a_forgotten_script(
    app: FastAPI, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = app_state(app).resources.redis
    real_sha, real_call, sent = rate_limit.SCRIPT_SHA, rate_limit._call, []

    async def recorded(connection: Any, *command: Any) -> Any:
        sent.append(command[0])
        return await real_call(connection, *command)

    monkeypatch.setattr(rate_limit, "_call", recorded)
    # As if Redis had forgotten the script (a restart, SCRIPT FLUSH), without flushing the
    # script cache of a Redis others may share: its SHA is one Redis never saw.
    monkeypatch.setattr(rate_limit, "SCRIPT_SHA", secrets.token_hex(20))
    policy = RatePolicy(2, 60)
    same = [window_check(f"{redis_prefix}:batch", "read", policy, "key:a") for _ in range(3)]
    other = window_check(f"{redis_prefix}:batch", "read", policy, "key:b")
    connection = await redis.connection_pool.get_connection()
    try:
        decisions = await check_all(connection, [*same, other])  # NOSCRIPT → EVAL
        monkeypatch.setattr(rate_limit, "SCRIPT_SHA", real_sha)
        (again,) = await check_all(connection, [other])  # EVAL cached it: EVALSHA
    finally:
        await redis.connection_pool.release(connection)
    assert [(d.admitted, d.remaining) for d in decisions] == [
        (True, 1),
        (True, 0),
        (False, 0),  # the third of key:a in the same batch is over its limit of 2
        (True, 1),
    ]
    assert 59 <= decisions[2].reset_seconds <= 60
    assert (again.admitted, again.remaining) == (True, 0)
    assert sent == ["EVALSHA", "EVAL", "EVALSHA"]


async def test_checks_queued_while_a_script_call_is_in_flight_go_together_in_the_next(
    app: FastAPI, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batcher = CheckBatcher(app_state(app).resources.redis)
    sizes: list[int] = []
    in_flight, gate = asyncio.Event(), asyncio.Event()

    async def held_first(connection: Any, checks: list[Any]) -> list[Any]:
        sizes.append(len(checks))
        if len(sizes) == 1:
            in_flight.set()
            await gate.wait()  # the first call stays in flight while more checks come
        return await check_all(connection, checks)

    monkeypatch.setattr(rate_limit, "check_all", held_first)
    policy = RatePolicy(70, 60)

    def check() -> WindowCheck:
        return window_check(f"{redis_prefix}:flight", "read", policy, "key:f")

    first = [asyncio.ensure_future(batcher.check(check())) for _ in range(50)]
    await in_flight.wait()
    later = [asyncio.ensure_future(batcher.check(check())) for _ in range(50)]
    await asyncio.sleep(0.05)
    assert sizes == [50]  # one call at a time: the later checks wait for it
    gate.set()
    decisions = await asyncio.gather(*first, *later)
    assert sizes == [50, 50]
    assert [d.admitted for d in decisions] == [True] * 70 + [False] * 30  # exact, in order


async def test_the_limiters_connection_closed_by_redis_is_opened_again(
    app: FastAPI, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = app_state(app).resources.redis
    batcher = CheckBatcher(redis)
    policy = RatePolicy(10, 60)

    def check() -> WindowCheck:
        return window_check(f"{redis_prefix}:reopen", "read", policy, "key:r")

    async def closed_by_redis() -> None:
        connection = batcher._connection
        assert connection is not None
        await connection.send_command("CLIENT", "ID")
        await redis.execute_command("CLIENT", "KILL", "ID", await connection.read_response())

    assert (await batcher.check(check())).remaining == 9
    await closed_by_redis()
    # Used again at once, it is not checked first: that call fails (the middleware lets its
    # requests through), and the next one reconnects.
    with pytest.raises(REDIS_FAILURES):
        await batcher.check(check())
    assert (await batcher.check(check())).remaining == 8
    # After a quiet spell it is checked (as the pool checks what it lends), and reopened.
    await closed_by_redis()
    monkeypatch.setattr(rate_limit, "IDLE_CHECK_SECONDS", 0.0)
    assert (await batcher.check(check())).remaining == 7


async def test_redis_outage_fails_open_counts_it_and_logs_once(
    settings: Settings, make_key: KeyMaker, caplog: pytest.LogCaptureFixture
) -> None:
    key = await make_key("viewer")
    down = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    before = fail_open_total()
    caplog.set_level(logging.WARNING, logger="app.api.middleware.rate_limit")
    async with serve(settings.model_copy(update={"redis_url": SecretStr(down)})) as http:
        started = time.monotonic()
        responses = [await http.get(CLIENTS, headers=bearer(key)) for _ in range(20)]
        elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * 20
    assert not any(set(HEADERS) & set(r.headers) for r in responses)
    assert fail_open_total() - before == 20
    warnings = [r for r in caplog.records if r.name == "app.api.middleware.rate_limit"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "failing open" in warnings[0].getMessage()
    assert down not in warnings[0].getMessage() and key not in warnings[0].getMessage()
    assert elapsed < 10


def test_the_breaker_skips_redis_then_lets_one_probe_through() -> None:
    breaker = Breaker(cooldown=0.05)
    assert breaker.allow()
    breaker.failure()
    assert not breaker.allow()
    time.sleep(0.06)
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # the others keep failing open while it runs
    assert breaker.success()  # it closes the circuit
    assert breaker.allow() and breaker.allow()
    assert not breaker.success()
