"""One request's X-Request-ID in the API's access log line and in the worker's log lines of the
job it queued (a real worker process); and how ids are accepted, generated and echoed."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from app.api.middleware.request_id import WELL_FORMED
from app.api.state import app_state
from app.logging import JsonFormatter
from app.services.tenancy import api_keys
from app.settings import Settings
from tests.conftest import Databases, bearer
from tests.e2e.conftest import run_cli, settings_env
from tests.helpers import create_closing, upload
from tests.ops_helpers import app_client, migrated_database, unique_prefix, variant

LEDGER = b"fecha,comprobante,cuenta,debe,haber\n2026-10-01,V1,1101,5,0\n2026-10-01,V1,2101,0,5\n"


@pytest.fixture
def api_log() -> Iterator[io.StringIO]:
    """The API's access log, rendered by the service's JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("app.access")
    previous = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        access.removeHandler(handler)
        access.setLevel(previous)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def finished(http: AsyncClient, key: str, location: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = (await http.get(location, headers=bearer(key))).json()
        if body["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


async def test_the_request_id_is_in_the_api_line_and_the_workers_lines(
    settings: Settings, databases: Databases, api_log: io.StringIO, tmp_path: Path
) -> None:
    update: dict[str, Any] = {
        "database_url": await migrated_database(databases, "reqid"),
        "redis_key_prefix": unique_prefix(settings, "reqid"),
    }
    request_id = f"trace-{secrets.token_hex(8)}"
    async with app_client(settings, **update) as (application, http):
        async with app_state(application).resources.engine.begin() as conn:
            key = await api_keys.create_key(conn, tenant="reqid", role="analyst", name="r")
        closing = await create_closing(http, key)
        http.headers["X-Request-ID"] = request_id
        accepted = await upload(http, key, closing.id, LEDGER)
        del http.headers["X-Request-ID"]
        assert accepted.status_code == 202, accepted.text
        assert accepted.headers["X-Request-ID"] == request_id
        iteration_id = accepted.json()["id"]

        env = settings_env(variant(settings, **update), LOG_LEVEL="INFO")
        with run_cli(["worker"], env, tmp_path) as worker:
            done = await finished(http, key, accepted.headers["Location"], timeout=60)
            worker.process.send_signal(signal.SIGTERM)
            assert worker.process.wait(timeout=30) == 0, worker.output()
    assert done["status"] == "succeeded", worker.output()

    api_lines = [line for line in json_lines(api_log.getvalue()) if line.get("request_id")]
    (upload_line,) = [line for line in api_lines if line["request_id"] == request_id]
    assert upload_line["logger"] == "app.access"
    assert upload_line["route"] == "/api/v1/closings/{closing_id}/ledger"
    assert upload_line["status"] == 202 and upload_line["method"] == "POST"
    assert all(line["request_id"] != request_id for line in api_lines if line is not upload_line)

    worker_lines = json_lines(worker.stderr)
    job_lines = [line for line in worker_lines if line.get("iteration_id") == iteration_id]
    assert job_lines, worker.output()
    assert all(line.get("request_id") == request_id for line in job_lines), job_lines
    messages = [line["message"] for line in worker_lines if line.get("request_id") == request_id]
    assert f"iteration {iteration_id} started (attempt 1)" in messages
    assert f"iteration {iteration_id} succeeded" in messages
    assert any("timings" in message for message in messages)


@pytest.mark.parametrize(
    "sent",
    [None, "has spaces", "x" * 129, "emoji-☃", "-leading-dash", ""],
    ids=["missing", "spaces", "too-long", "non-ascii", "leading-dash", "empty"],
)
async def test_a_missing_or_malformed_id_is_replaced_by_a_fresh_one(
    client: AsyncClient, sent: str | None
) -> None:
    headers = {} if sent is None else {"X-Request-ID": sent.encode()}
    first = await client.get("/alive", headers=headers)
    second = await client.get("/alive", headers=headers)
    generated = first.headers["X-Request-ID"]
    assert generated != sent
    assert len(generated) == 32 and int(generated, 16) >= 0  # a uuid4, hex
    assert second.headers["X-Request-ID"] != generated


@pytest.mark.parametrize(
    "sent", ["3f2b9c1e-8d4a-4c2b-9a61-0c2d5e7f8a90", "01HZX3K9QZ8Y7W6V5T4S3R2Q1P", "svc-1:a.b_c"]
)
async def test_a_well_formed_id_is_kept_and_echoed_once(client: AsyncClient, sent: str) -> None:
    assert WELL_FORMED.fullmatch(sent)
    response = await client.get("/api/v1/clients", headers={"X-Request-ID": sent})
    assert response.status_code == 401  # an error answer carries it too
    assert response.headers.get_list("X-Request-ID") == [sent]
