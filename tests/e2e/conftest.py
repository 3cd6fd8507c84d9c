"""Helpers for end-to-end tests that run the real `ledger-incidences` command in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.e2e.browser import DevTools, chromium_path, headless_chromium

# Every setting the service reads: the parent's values must not leak into a child under test.
SETTING_NAMES = (
    "DATABASE_URL",
    "REDIS_URL",
    "PORT",
    "HOST",
    "DATA_DIR",
    "BOOTSTRAP_API_KEY",
    "MAX_UPLOAD_BYTES",
    "TRUSTED_PROXIES",
    "RATE_LIMIT_READ",
    "RATE_LIMIT_WRITE",
    "RATE_LIMIT_UPLOAD",
    "RATE_LIMIT_ANON",
    "REDIS_KEY_PREFIX",
    "LOG_LEVEL",
    "PROBE_TIMEOUT_SECONDS",
    "SHUTDOWN_DRAIN_SECONDS",
    "WORKER_MAX_JOBS",
    "HEALTH_QUEUE_WARN_DEPTH",
    "HEALTH_CACHE_WARN_PERCENT",
    "HEALTH_CACHE_MIN_READS",
    "HEALTH_DISK_WARN_PERCENT",
    "HEALTH_MEMORY_WARN_PERCENT",
    "HEALTH_ERROR_WARN_PERCENT",
    "ITERATION_RETENTION",
)


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any service setting, plus `values`."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    env.update(values)
    return env


def settings_env(settings: Settings, **values: str) -> dict[str, str]:
    """The environment of a child that serves the suite's database, Redis and key prefix."""
    assert settings.database_url is not None and settings.redis_url is not None
    return clean_env(
        DATABASE_URL=settings.database_url.get_secret_value(),
        REDIS_URL=settings.redis_url.get_secret_value(),
        REDIS_KEY_PREFIX=settings.redis_key_prefix,
        DATA_DIR=str(settings.data_dir),
        HOST="127.0.0.1",
        **values,
    )


@dataclass
class Child:
    """A `ledger-incidences` subprocess whose output goes to files (no pipe can fill up)."""

    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        """Both streams (stderr trimmed), for assertion messages."""
        return f"--- stdout ---\n{self.stdout}\n--- stderr (tail) ---\n{self.stderr[-4000:]}"

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the child's whole process group, as a terminal's Ctrl+C does."""
        os.killpg(self.process.pid, sig)


@contextmanager
def run_cli(args: list[str], env: dict[str, str], workdir: Path) -> Iterator[Child]:
    """Run `python -m app.cli ARGS` in its own session; it is killed if still alive at exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    tag = "-".join(args)[:40].replace("/", "_")
    stdout_path = workdir / f"{tag}.{time.monotonic_ns()}.out"
    stderr_path = workdir / f"{tag}.{time.monotonic_ns()}.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    child = Child(process, stdout_path, stderr_path)
    try:
        yield child
    finally:
        if process.poll() is None:
            # Leave no stray process behind whatever failed: SIGTERM, then SIGKILL.
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def wait_for_status(
    url: str,
    status: int,
    child: Child,
    *,
    timeout: float = 60.0,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Poll `url` until it answers `status`; fail early if the child died."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise AssertionError(
                f"the process exited with {child.process.returncode}\n{child.output()}"
            )
        try:
            response = httpx.get(url, timeout=2.0, headers=headers)
            if response.status_code == status:
                return response
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered {status} (last: {last!r})\n{child.output()}")


@contextmanager
def running_server(settings: Settings, workdir: Path, **env: str) -> Iterator[tuple[str, Child]]:
    """`ledger-incidences serve` on a free loopback port, ready; yields (base URL, child)."""
    port = free_port()
    environment = settings_env(settings, PORT=str(port), **env)
    with run_cli(["serve"], environment, workdir) as child:
        base = f"http://127.0.0.1:{port}"
        wait_for_status(f"{base}/ready", 200, child, timeout=30)
        yield base, child


# --- the web console's browser tests ------------------------------------------------------

DESKTOP = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


@pytest.fixture(scope="module")
def console_server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of the suite's database and Redis, for one module's browser tests."""
    chromium_path()  # skip or fail before starting anything
    with running_server(settings, tmp_path_factory.mktemp("console-server")) as (base, _):
        yield base


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    """A headless Chromium page at a desktop's size."""
    with headless_chromium(tmp_path) as devtools:
        devtools.call("Emulation.setDeviceMetricsOverride", **DESKTOP)
        yield devtools
