"""`ledger-incidences dev`: everything on one machine (embedded servers, migrations, the API and
a worker), printing the docs and console URLs and an admin key, and restarting the API or the
worker whenever one of them stops."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from app.cli.context import migrate_database, resolved, with_connection
from app.cli.supervision import Supervised, stop_children, supervise
from app.settings import MIN_BOOTSTRAP_KEY_LENGTH, Settings

DEV_KEY_FILE = "dev-api-key"

logger = logging.getLogger(__name__)


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
    url: str, stop: threading.Event, children: list[Supervised], timeout: float = 60.0
) -> bool:
    """Poll /ready; give up at once on Ctrl+C or when a child died (e.g. the port is taken):
    a child that cannot even start is not restarted."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if any(child.process.poll() is not None for child in children):
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
        children = [Supervised("api", ["serve"], env), Supervised("worker", ["worker"], env)]
        base = f"http://{concrete.host}:{concrete.port}"
        status = 0
        if _wait_until_ready(f"{base}/ready", stop, children):
            print(
                f"\nLedger Incidences is running.\n  API docs: {base}/docs\n"
                f"  Console:  {base}/ui\n  API key:  {key}\n\nPress Ctrl+C to stop.",
                flush=True,
            )
            status = supervise(children, stop)
        elif not stop.is_set():
            print(f"the API did not become ready at {base}/ready", file=sys.stderr)
            status = 1
        stop_children([child.process for child in children])
    return status


def _install_stop_handler() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def register(commands: Any) -> None:
    """The `dev` subcommand."""
    dev = commands.add_parser("dev", help="run everything: embedded Postgres+Redis, API and worker")
    dev.set_defaults(handler=cmd_dev)
