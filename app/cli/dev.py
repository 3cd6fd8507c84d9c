"""`ledger-incidences dev`: everything on one machine (embedded servers, migrations, the API and
a worker), printing the docs URL and an admin key."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from app.cli.context import migrate_database, resolved, with_connection
from app.settings import MIN_BOOTSTRAP_KEY_LENGTH, Settings

DEV_KEY_FILE = "dev-api-key"


def _dev_key(settings: Settings) -> str:
    """BOOTSTRAP_API_KEY, or a dev admin key kept in DATA_DIR so every run prints the same one."""
    from app.services.tenancy import api_keys

    if settings.bootstrap_api_key is not None:
        key = settings.bootstrap_api_key.get_secret_value()
    else:
        key_file = settings.data_dir / DEV_KEY_FILE
        key = key_file.read_text().strip() if key_file.exists() else ""
        if len(key) < MIN_BOOTSTRAP_KEY_LENGTH:  # none yet, or one made too short by hand
            key = api_keys.generate_key()
            key_file.write_text(key)
            key_file.chmod(0o600)
    asyncio.run(with_connection(settings, lambda conn: api_keys.ensure_bootstrap_key(conn, key)))
    return key


def _wait_until_ready(
    url: str,
    stop: threading.Event,
    children: list[subprocess.Popen[bytes]],
    timeout: float = 60.0,
) -> bool:
    """Poll /ready; give up at once on Ctrl+C or when a child died (e.g. the port is taken)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if any(child.poll() is not None for child in children):
            return False
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        stop.wait(0.25)
    return False


def cmd_dev(settings: Settings, _: argparse.Namespace) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no log line per /ready poll
    with resolved(settings) as concrete:
        asyncio.run(migrate_database(concrete))
        key = _dev_key(concrete)
        assert concrete.database_url is not None and concrete.redis_url is not None
        env = {
            **os.environ,
            "DATABASE_URL": concrete.database_url.get_secret_value(),
            "REDIS_URL": concrete.redis_url.get_secret_value(),
            "PORT": str(concrete.port),
        }
        # Installed before the children start, so Ctrl+C at any moment stops them all and then
        # the embedded servers (when `resolved` exits), in that order.
        stop = _install_stop_handler()
        children = [
            subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env),
            subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env),
        ]
        base = f"http://{concrete.host}:{concrete.port}"
        status = 0
        if _wait_until_ready(f"{base}/ready", stop, children):
            print(
                f"\nLedger Incidences is running.\n  API docs: {base}/docs\n"
                f"  API key:  {key}\n\nPress Ctrl+C to stop.",
                flush=True,
            )
        elif not stop.is_set():
            print(f"the API did not become ready at {base}/ready", file=sys.stderr)
            stop.set()
            status = 1
        while not stop.is_set() and all(child.poll() is None for child in children):
            stop.wait(0.5)
        if not stop.is_set():
            print("a child process exited unexpectedly; stopping", file=sys.stderr)
            status = 1
        _stop_children(children)
    return status


def _install_stop_handler() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _stop_children(children: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def register(commands: Any) -> None:
    """The `dev` subcommand."""
    dev = commands.add_parser("dev", help="run everything: embedded Postgres+Redis, API and worker")
    dev.set_defaults(handler=cmd_dev)
