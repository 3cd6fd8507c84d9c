"""`ledger-incidences upload` against a real uvicorn server and a real worker (subprocesses on
loopback, bounded by timeouts, always stopped)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from httpx import AsyncClient

from app.settings import Settings
from tests.conftest import KeyMaker
from tests.helpers import create_closing, get_json

READY_TIMEOUT = 60.0
CLI_TIMEOUT = 120.0
SERVICE_SETTINGS = (
    "DATABASE_URL",
    "REDIS_URL",
    "PORT",
    "HOST",
    "DATA_DIR",
    "BOOTSTRAP_API_KEY",
    "MAX_UPLOAD_BYTES",
    "TRUSTED_PROXIES",
    "REDIS_KEY_PREFIX",
    "SHUTDOWN_DRAIN_SECONDS",
    "LEDGER_INCIDENCES_URL",
    "LEDGER_INCIDENCES_KEY",
)
LEDGER = (
    "Fecha;Nº Asiento;Cuenta;Debe;Haber\n"
    "2026-10-01;A1;1101;1.500,50;0\n2026-10-01;A1;4101;0;1.500,50\n"
    "2026-09-30;A2;1101;10;0\n2026-09-30;A2;9999;0;7\n"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in SERVICE_SETTINGS}
    return {**env, "COLUMNS": "200", **values}


@contextmanager
def _started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
async def service(settings: Settings, tmp_path: Path) -> AsyncIterator[str]:
    """A `serve` and a `worker` subprocess on the suite's database and Redis; yields the URL."""
    assert settings.database_url is not None and settings.redis_url is not None
    port = _free_port()
    env = _env(
        DATABASE_URL=settings.database_url.get_secret_value(),
        REDIS_URL=settings.redis_url.get_secret_value(),
        REDIS_KEY_PREFIX=settings.redis_key_prefix,
        DATA_DIR=str(settings.data_dir),
        HOST="127.0.0.1",
        PORT=str(port),
        SHUTDOWN_DRAIN_SECONDS="0",
    )
    base = f"http://127.0.0.1:{port}"
    with (
        _started(["serve"], env, tmp_path / "serve.log") as server,
        _started(["worker"], env, tmp_path / "worker.log") as worker,
    ):
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(int(READY_TIMEOUT / 0.25)):
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                try:
                    if (await http.get(f"{base}/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.25)
            else:
                raise AssertionError(f"{base}/ready never answered 200")
        yield base


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("ledger-incidences")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *_cli(),
        *args,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_upload_follows_the_iteration(
    service: str, client: AsyncClient, make_key: KeyMaker, tmp_path: Path
) -> None:
    key = await make_key("analyst", name="cli")
    closing = (await create_closing(client, key, chart=[{"code": "1101", "name": "Caja"}])).id
    ledger = tmp_path / "ledger.csv"
    ledger.write_text(LEDGER, encoding="cp1252")
    code, out, err = await run_cli(
        "upload",
        str(ledger),
        "--closing",
        closing,
        "--url",
        service,
        "--key",
        key,
        "--decimal-separator",
        ",",
        "--column-map",
        '{"voucher": "Nº Asiento"}',
    )
    assert code == 0, out + err + (tmp_path / "worker.log").read_text()[-4000:]
    summary = json.loads(out)  # progress goes to stderr; stdout is the iteration as JSON
    assert (summary["number"], summary["status"], summary["trigger"]) == (1, "succeeded", "initial")
    assert summary["requested_by"] == "cli"
    assert summary["movements_processed"] == 4
    document = await get_json(client, key, f"/closings/{closing}/incidences")
    assert summary["summary"]["content_hash"] == document["content_hash"]
    assert document["statistics"]["debit_total"] == "1510.50"
    keys = {i["key"] for i in document["incidences"]}
    assert {"ACCOUNT_NOT_IN_CHART:4101", "ACCOUNT_NOT_IN_CHART:9999"} <= keys
    assert {"MOVEMENT_OUT_OF_PERIOD:2026-09", "VOUCHER_UNBALANCED:A2"} <= keys

    refused = tmp_path / "refused.csv"
    refused.write_text("Fecha;Cuenta;Debe;Haber\n2026-10-01;1101;1;0\n")
    code, out, err = await run_cli(
        "upload", str(refused), "--closing", closing, "--url", service, "--key", key
    )
    assert code == 1
    assert out == ""
    message = " ".join(err.split())
    assert "422" in message and "voucher" in message and "'Fecha'" in message
    iterations = (await get_json(client, key, f"/closings/{closing}/iterations"))["items"]
    assert [i["number"] for i in iterations] == [1]  # the refused file queued nothing


async def test_cli_usage_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    nobody = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    code, _, err = await run_cli("upload", missing, "--closing", "x", "--url", nobody)
    assert code == 2 and "key" in err
    code, _, err = await run_cli("upload", missing, "--closing", "x", "--key", "k")
    assert code == 2 and "nope.csv" in err
    ledger = tmp_path / "ledger.csv"
    ledger.write_text(LEDGER)
    code, out, err = await run_cli(
        "upload", str(ledger), "--closing", "x", "--url", nobody, "--key", "k"
    )
    assert (code, out) == (1, "")
    assert nobody in " ".join(err.split()) and "Traceback" not in err  # a message, not a crash
