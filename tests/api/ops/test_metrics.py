"""/metrics: valid Prometheus text (promtool when installed), bounded labels, worker counters."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from app.adapters.postgres.tables import iterations
from app.adapters.redis import heartbeat
from app.api.state import app_state
from app.services.tenancy import api_keys
from app.settings import Settings
from tests.conftest import Databases, KeyMaker, bearer, drain_queue
from tests.helpers import create_closing, upload
from tests.ops_helpers import app_client, migrated_database, unique_prefix, variant

# A UUID, or a run of digits: what a raw path would put in a label.
ID_LIKE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}|[0-9]{3,}")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def promtool_check(text: str) -> None:
    """`promtool check metrics` when installed (CI installs Debian's prometheus package)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        assert not os.environ.get("CI"), "CI must validate /metrics with promtool"
        return
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def templates(app: FastAPI) -> set[str]:
    return {c.path_format for c in iter_route_contexts(app.routes) if c.path_format}


async def scrape(http: AsyncClient) -> tuple[str, Samples]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text, parse(response.text)


async def test_exposition_is_valid_and_labels_are_route_templates(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker
) -> None:
    key = await make_key("viewer")
    ids = [str(uuid.uuid4()) for _ in range(5)]
    _, before = await scrape(client)
    for closing_id in ids:
        response = await client.get(f"/api/v1/closings/{closing_id}", headers=bearer(key))
        assert response.status_code == 404
        assert (await client.get(f"/no/such/{closing_id}")).status_code == 404
    assert (await client.request("BREW", "/alive")).status_code == 405
    assert (await client.get("/alive")).status_code == 200

    text, after = await scrape(client)
    promtool_check(text)

    closing = {"method": "GET", "route": "/api/v1/closings/{closing_id}", "status_class": "4xx"}
    assert value(after, "ledger_http_requests_total", **closing) - value(
        before, "ledger_http_requests_total", **closing
    ) == len(ids)
    unmatched = {"method": "GET", "route": "unmatched", "status_class": "4xx"}
    assert value(after, "ledger_http_requests_total", **unmatched) - value(
        before, "ledger_http_requests_total", **unmatched
    ) == len(ids)
    brew = {"method": "OTHER", "route": "/alive", "status_class": "4xx"}
    assert value(after, "ledger_http_requests_total", **brew) >= 1
    latency = {"method": "GET", "route": "/api/v1/closings/{closing_id}"}
    assert value(after, "ledger_http_request_duration_seconds_count", **latency) >= len(ids)

    # Cardinality: routes are templates, never a raw path or an id. (The registry is the
    # process's: other tests' applications may add templates of their own test routes.)
    routes = {dict(labels)["route"] for (_, labels) in after if "route" in dict(labels)}
    assert {"/api/v1/closings/{closing_id}", "/alive", "unmatched"} <= routes
    assert "/api/v1/closings/{closing_id}" in templates(app)
    for route in routes - {"unmatched"}:
        assert route.startswith("/") and not ID_LIKE.search(route), route
    methods = {dict(labels)["method"] for (_, labels) in after if "method" in dict(labels)}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}
    for closing_id in ids:
        assert closing_id not in text
    for name in (
        "ledger_cache_lookups",
        "ledger_rate_limit_rejections",
        "ledger_rate_limit_fail_open",
        "ledger_queue_depth",
        "ledger_live_workers",
        "ledger_jobs",
        "ledger_movements_processed",
        "ledger_iteration_duration_seconds",
    ):
        assert f"# TYPE {name}" in text, name


async def test_metrics_is_not_in_the_openapi_schema(client: AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/metrics" not in paths
    assert "/health" in paths


def ledger(vouchers: int) -> tuple[bytes, int]:
    """Balanced two-line vouchers; returns the CSV and its number of movements."""
    rows = ["fecha,comprobante,cuenta,debe,haber"]
    for n in range(vouchers):
        rows.append(f"2026-10-01,V{n},1101,{n + 1}.00,0")
        rows.append(f"2026-10-01,V{n},2101,0,{n + 1}.00")
    return ("\n".join(rows) + "\n").encode(), 2 * vouchers


async def test_worker_job_counters_queue_depth_and_live_workers_reach_the_api(
    settings: Settings, databases: Databases
) -> None:
    """The worker is another process in production: its counters travel through Redis."""
    update: dict[str, Any] = {
        "database_url": await migrated_database(databases, "metrics"),
        "redis_key_prefix": unique_prefix(settings, "metrics"),
    }
    async with app_client(settings, **update) as (application, http):
        resources = app_state(application).resources
        async with resources.engine.begin() as conn:
            key = await api_keys.create_key(conn, tenant="metrics", role="admin", name="m")
        closings = [await create_closing(http, key, period=f"2026-{m:02d}") for m in (10, 11)]
        sizes = [ledger(3), ledger(7)]
        for closing, (content, _) in zip(closings, sizes, strict=True):
            assert (await upload(http, key, closing.id, content)).status_code == 202

        _, queued = await scrape(http)
        assert value(queued, "ledger_queue_depth") == 2
        assert value(queued, "ledger_jobs_total", outcome="succeeded") == 0
        assert value(queued, "ledger_metrics_source_up", source="redis") == 1
        no_worker = value(queued, "ledger_live_workers")

        await drain_queue(variant(settings, **update))
        await heartbeat.beat(resources.redis, update["redis_key_prefix"], "metrics-test")
        text, done = await scrape(http)
        await heartbeat.forget(resources.redis, update["redis_key_prefix"], "metrics-test")
        async with resources.engine.connect() as conn:
            statuses = (await conn.execute(sa.select(iterations.c.status))).scalars().all()

    promtool_check(text)
    assert statuses == ["succeeded", "succeeded"]
    assert no_worker == 0
    assert value(done, "ledger_live_workers") == 1
    assert value(done, "ledger_queue_depth") == 0
    assert value(done, "ledger_jobs_total", outcome="succeeded") == 2
    assert value(done, "ledger_jobs_total", outcome="failed") == 0
    assert value(done, "ledger_movements_processed_total") == sum(n for _, n in sizes)
    assert value(done, "ledger_iteration_duration_seconds_count") == 2
    assert value(done, "ledger_iteration_duration_seconds_bucket", le="+Inf") == 2
    assert value(done, "ledger_iteration_duration_seconds_sum") > 0
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (name, labels), count in done.items()
        if name == "ledger_iteration_duration_seconds_bucket"
    )
    counts = [count for _, count in buckets]
    assert counts == sorted(counts) and buckets[-1] == (math.inf, 2)


async def test_metrics_answer_when_the_datastores_do_not(settings: Settings) -> None:
    update = {
        "database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/ledger",
        "redis_url": "redis://127.0.0.1:1/0",
    }
    async with app_client(settings, **update) as (_, http):
        text, samples = await scrape(http)
    promtool_check(text)
    assert value(samples, "ledger_metrics_source_up", source="postgres") == 0
    assert value(samples, "ledger_metrics_source_up", source="redis") == 0
    assert math.isnan(value(samples, "ledger_queue_depth"))
    assert "ledger_jobs_total" not in text  # unknown, rather than a false reset to zero


@pytest.mark.parametrize("path", ["/metrics", "/alive"])
async def test_probe_and_scrape_paths_need_no_key(client: AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200
