"""`ledger-incidences dev` as a newcomer runs it: no DATABASE_URL/REDIS_URL, so embedded
Postgres and Redis start under DATA_DIR; Ctrl+C stops every child and both servers; a second
run reuses the data and the key; `api-key create` works against the running instance."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import psutil
import pytest

from app.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.conftest import bearer
from tests.e2e.conftest import Child, clean_env, free_port, run_cli

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 45.0
DOCS_LINE = re.compile(r"API docs:\s*(http://\S+)/docs")
CONSOLE_LINE = re.compile(r"Console:\s*(http://\S+)/ui\n")
KEY_LINE = re.compile(r"API key:\s*(\S+)")


def wait_for_banner(child: Child) -> tuple[str, str]:
    """The base URL and the API key the dev command prints once everything is ready."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        out = child.stdout
        docs, key = DOCS_LINE.search(out), KEY_LINE.search(out)
        if docs and key:
            return docs.group(1), key.group(1)
        if child.process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"no docs URL and API key within the time limit\n{child.output()}")


def processes_under(data_dir: Path) -> list[psutil.Process]:
    """Running processes whose command line mentions data_dir (the embedded servers do)."""
    found = []
    marker = str(data_dir.resolve())
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def pid_alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])


def redis_pid(data_dir: Path) -> int:
    return int((data_dir / "redis" / "redis.pid").read_text().strip())


def stop_with_ctrl_c(child: Child, data_dir: Path, watched: list[int]) -> None:
    """SIGINT to the whole process group (what Ctrl+C in a terminal does); all must stop."""
    child.signal_group(signal.SIGINT)
    try:
        child.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except Exception as exc:
        raise AssertionError(f"dev did not stop after Ctrl+C\n{child.output()}") from exc
    assert child.process.returncode == 0, child.output()
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in watched) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in watched if pid_alive(pid)]
    assert survivors == [], f"still running after Ctrl+C: {survivors}\n{child.output()}"
    assert processes_under(data_dir) == []
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A DATA_DIR outside pytest's own temp root: a concurrently starting pytest session resets
    that root to mode 0700, which would lock out the unprivileged user embedded Postgres runs as
    under root (pgserver) in the middle of this test."""
    path = Path(tempfile.mkdtemp(prefix="li-e2e-dev-"))
    data = path / "data"
    try:
        yield data
    finally:
        # Safety net when a failure left the servers behind (the test asserts they stopped).
        for server in (EmbeddedRedis(data), EmbeddedPostgres(data)):
            with suppress(Exception):
                server.stop()
        shutil.rmtree(path, ignore_errors=True)


def test_dev_runs_everything_stops_cleanly_and_keeps_its_data(
    tmp_path: Path, data_dir: Path
) -> None:
    port = free_port()
    env = clean_env(DATA_DIR=str(data_dir), PORT=str(port))
    assert "DATABASE_URL" not in env and "REDIS_URL" not in env

    # First run: embedded servers are created, the printed key works.
    with run_cli(["dev"], env, tmp_path / "run1") as dev:
        base, key = wait_for_banner(dev)
        assert base == f"http://127.0.0.1:{port}"
        assert key.startswith("li_")
        listed = httpx.get(f"{base}/api/v1/clients", headers=bearer(key), timeout=5)
        assert listed.status_code == 200, listed.text
        assert listed.json() == {"items": [], "next_cursor": None}
        assert httpx.get(f"{base}/ready", timeout=5).status_code == 200
        docs = httpx.get(f"{base}/docs", timeout=5)
        assert docs.status_code == 200 and "/docs-assets/" in docs.text
        # The web console's address is printed beside the docs', and it is served there.
        console = CONSOLE_LINE.search(dev.stdout)
        assert console and console.group(1) == base, dev.output()
        page = httpx.get(f"{base}/ui", timeout=5)
        assert page.status_code == 200 and "/ui/assets/" in page.text
        created = httpx.post(
            f"{base}/api/v1/clients", json={"name": "Kept Co"}, headers=bearer(key), timeout=5
        )
        assert created.status_code == 201, created.text

        # Postgres lives under DATA_DIR/postgres and Redis under DATA_DIR/redis.
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        assert (data_dir / "redis" / "redis.pid").exists()
        children = [p.pid for p in psutil.Process(dev.process.pid).children(recursive=True)]
        assert len(children) >= 2  # serve and worker
        watched = [*children, postmaster_pid(data_dir), redis_pid(data_dir)]

        # An operator key made by the CLI (same DATA_DIR) works against the running server.
        with run_cli(
            ["api-key", "create", "--tenant", "acme", "--role", "viewer", "--name", "ops"],
            env,
            tmp_path / "api-key",
        ) as cli:
            assert cli.process.wait(timeout=60) == 0, cli.output()
            viewer_key = cli.stdout.strip().splitlines()[-1]
        assert viewer_key.startswith("li_") and viewer_key != key
        viewer = httpx.get(f"{base}/api/v1/clients", headers=bearer(viewer_key), timeout=5)
        assert viewer.status_code == 200 and viewer.json()["items"] == []  # another tenant
        denied = httpx.post(
            f"{base}/api/v1/clients", json={"name": "x"}, headers=bearer(viewer_key), timeout=5
        )
        assert denied.status_code == 403
        # `api-key create` found the servers running and left them running.
        assert pid_alive(postmaster_pid(data_dir)) and pid_alive(redis_pid(data_dir))
        assert httpx.get(f"{base}/ready", timeout=5).status_code == 200

        stop_with_ctrl_c(dev, data_dir, watched)
    assert "Traceback" not in dev.stderr, dev.output()

    # Second run with the same DATA_DIR: same key, same data.
    with run_cli(["dev"], env, tmp_path / "run2") as dev:
        base, second_key = wait_for_banner(dev)
        assert second_key == key
        listed = httpx.get(f"{base}/api/v1/clients", headers=bearer(key), timeout=5)
        assert [c["name"] for c in listed.json()["items"]] == ["Kept Co"]
        viewer = httpx.get(f"{base}/api/v1/clients", headers=bearer(viewer_key), timeout=5)
        assert viewer.status_code == 200
        watched = [
            *(p.pid for p in psutil.Process(dev.process.pid).children(recursive=True)),
            postmaster_pid(data_dir),
            redis_pid(data_dir),
        ]
        stop_with_ctrl_c(dev, data_dir, watched)


def test_dev_fails_fast_when_the_port_is_taken(tmp_path: Path, data_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = clean_env(DATA_DIR=str(data_dir), PORT=str(port))
        with run_cli(["dev"], env, tmp_path / "run") as dev:
            try:
                returncode = dev.process.wait(timeout=STARTUP_TIMEOUT_SECONDS)
            except Exception as exc:
                raise AssertionError(f"dev kept running on a taken port\n{dev.output()}") from exc
            assert returncode != 0, dev.output()
            assert "API key" not in dev.stdout
    deadline = time.monotonic() + 10
    while processes_under(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_under(data_dir) == [], "embedded servers left running"


def _child(dev: Child, command: str) -> psutil.Process:
    """The dev command's `serve` or `worker` child process, once it runs."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for proc in psutil.Process(dev.process.pid).children():
            with suppress(psutil.NoSuchProcess):
                cmdline = proc.cmdline()
                if "app.cli" in cmdline and command in cmdline and proc.status() != "zombie":
                    return proc
        time.sleep(0.2)
    raise AssertionError(f"no running `{command}` child\n{dev.output()}")


def test_dev_restarts_a_child_that_crashed(tmp_path: Path, data_dir: Path) -> None:
    port = free_port()
    env = clean_env(DATA_DIR=str(data_dir), PORT=str(port))
    with run_cli(["dev"], env, tmp_path / "run") as dev:
        base, key = wait_for_banner(dev)
        for command in ("serve", "worker"):
            crashed = _child(dev, command)
            crashed.kill()  # SIGKILL: a crash, not a shutdown
            crashed.wait(10)
            restarted = _child(dev, command)
            assert restarted.pid != crashed.pid
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.25)
        listed = httpx.get(f"{base}/api/v1/clients", headers=bearer(key), timeout=5)
        assert listed.status_code == 200, dev.output()
        assert dev.process.poll() is None  # dev itself kept running
        for name in ("api", "worker"):
            assert f"the {name} was restarted" in dev.stderr, dev.output()
        watched = [
            *(p.pid for p in psutil.Process(dev.process.pid).children(recursive=True)),
            postmaster_pid(data_dir),
            redis_pid(data_dir),
        ]
        stop_with_ctrl_c(dev, data_dir, watched)
