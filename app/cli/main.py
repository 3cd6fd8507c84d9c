"""The `ledger-incidences` CLI: dev, serve, worker, migrate, api-key, upload, backup, restore."""

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
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from app.cli.backup import add_backup_parsers, cmd_backup, cmd_restore
from app.logging import configure_logging
from app.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

DEV_KEY_FILE = "dev-api-key"


@contextmanager
def resolved(settings: Settings, *, persistent: bool = True) -> Iterator[Settings]:
    """Settings with concrete URLs: embedded servers under DATA_DIR stand in for unset ones."""
    if not settings.embedded:
        yield settings
        return
    warnings.filterwarnings("ignore", module="platformdirs")
    from app.embedded import embedded_servers

    with embedded_servers(
        settings.data_dir,
        postgres=settings.database_url is None,
        redis=settings.redis_url is None,
        persistent=persistent,
    ) as urls:
        yield settings.with_urls(
            settings.database_url.get_secret_value()
            if settings.database_url
            else urls.database_url,
            settings.redis_url.get_secret_value() if settings.redis_url else urls.redis_url,
        )


async def _migrate(settings: Settings) -> None:
    from app.migrations import upgrade_to_head
    from app.resources import create_engine

    engine = create_engine(settings, pool_size=1)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


async def _with_connection(
    settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]]
) -> T:
    from app.resources import create_engine

    engine = create_engine(settings, pool_size=1)
    try:
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    with resolved(settings) as concrete:
        asyncio.run(_migrate(concrete))
    print("database is at the migration head")
    return 0


def cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
    from app.cli.serve import serve

    with resolved(settings) as concrete:
        serve(concrete)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    # Polars' allocator (jemalloc) keeps freed pages for a while by default; returning them at
    # once keeps the worker's peak RSS near its live data on multi-million-movement ledgers.
    # It is read when Polars loads, so it is set before the worker's imports.
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:1000,muzzy_decay_ms:0")
    from workers.settings import check_worker_health, run_worker

    with resolved(settings) as concrete:
        if args.check:
            return 0 if asyncio.run(check_worker_health(concrete)) else 1
        run_worker(concrete)
    return 0


def cmd_api_key(settings: Settings, args: argparse.Namespace) -> int:
    from app.services.tenancy import api_keys

    with resolved(settings) as concrete:
        if args.action == "create":
            key = asyncio.run(
                _with_connection(
                    concrete,
                    lambda conn: api_keys.create_key(
                        conn, tenant=args.tenant, role=args.role, name=args.name
                    ),
                )
            )
            print(f"API key for tenant {args.tenant!r}, role {args.role}, name {args.name!r}:")
            print(key)  # the last line of stdout, so scripts can `| tail -n 1`
        elif args.action == "list":
            keys = asyncio.run(
                _with_connection(concrete, lambda conn: api_keys.list_keys(conn, args.tenant))
            )
            for info in keys:
                state = "revoked" if info.revoked else "active"
                print(
                    f"{info.id}  {info.tenant:<16} {info.role:<8} {state:<8} "
                    f"{info.key_prefix}…  {info.name}  (created {info.created_at})"
                )
        else:
            try:
                key_id = uuid.UUID(args.id)
            except ValueError:
                print(f"not a key id: {args.id!r} (see `api-key list`)", file=sys.stderr)
                return 2
            revoked = asyncio.run(
                _with_connection(concrete, lambda conn: api_keys.revoke_key(conn, key_id))
            )
            if not revoked:
                print(f"no active API key with id {args.id}", file=sys.stderr)
                return 1
            print(f"revoked API key {args.id}")
    return 0


def _dev_key(settings: Settings) -> str:
    """BOOTSTRAP_API_KEY, or a dev admin key kept in DATA_DIR so every run prints the same one."""
    from app.services.tenancy import api_keys

    if settings.bootstrap_api_key is not None:
        key = settings.bootstrap_api_key.get_secret_value()
    else:
        key_file = settings.data_dir / DEV_KEY_FILE
        if not key_file.exists():
            key_file.write_text(api_keys.generate_key())
            key_file.chmod(0o600)
        key = key_file.read_text().strip()
    asyncio.run(_with_connection(settings, lambda conn: api_keys.ensure_bootstrap_key(conn, key)))
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
        asyncio.run(_migrate(concrete))
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


def cmd_upload(settings: Settings, args: argparse.Namespace) -> int:
    from app.cli.upload import upload

    return upload(
        Path(args.file),
        args.closing,
        url=args.url,
        key=args.key,
        decimal_separator=args.decimal_separator,
        column_map=args.column_map,
    )


async def _warm_cache(settings: Settings) -> tuple[int, int]:
    from app.resources import Resources
    from app.services.snapshot_cache.writes import warm

    resources = Resources.build(settings)
    try:
        return await warm(resources)
    finally:
        await resources.aclose()


def cmd_cache(settings: Settings, args: argparse.Namespace) -> int:
    with resolved(settings) as concrete:
        written, current = asyncio.run(_warm_cache(concrete))
    print(f"cache warm: {written} snapshot(s) of open closings loaded, {current} already current")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="ledger-incidences", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("dev", help="run everything: embedded Postgres+Redis, API and worker")
    commands.add_parser("serve", help="run the HTTP API")
    worker = commands.add_parser("worker", help="run a background worker")
    worker.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker heartbeat is fresh, else 1 (for healthchecks)",
    )
    commands.add_parser("migrate", help="upgrade the database schema to the newest migration")

    api_key = commands.add_parser("api-key", help="manage API keys")
    actions = api_key.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", required=True, choices=["viewer", "analyst", "admin"])
    create.add_argument("--name", required=True)
    listing = actions.add_parser("list", help="list keys (never their secrets nor hashes)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    revoke = actions.add_parser("revoke", help="revoke a key by id: refused from then on")
    revoke.add_argument("id", help="the key's id, as `api-key list` prints it")

    upload = commands.add_parser("upload", help="upload a ledger and follow its processing")
    upload.add_argument("file")
    upload.add_argument("--closing", required=True, help="closing id")
    upload.add_argument(
        "--url", default=os.environ.get("LEDGER_INCIDENCES_URL", "http://127.0.0.1:8000")
    )
    upload.add_argument("--key", default=os.environ.get("LEDGER_INCIDENCES_KEY"))
    upload.add_argument(
        "--decimal-separator",
        choices=[".", ","],
        help="the amounts' decimal separator (detected from them when not given)",
    )
    upload.add_argument(
        "--column-map", default=None, help='JSON object {"field": "Header in the file"}'
    )
    cache = commands.add_parser("cache", help="snapshot cache operations")
    cache_actions = cache.add_subparsers(dest="action", required=True)
    cache_actions.add_parser("warm", help="pre-load the snapshots of open closings into Redis")
    add_backup_parsers(commands)
    return parser


COMMANDS = {
    "dev": cmd_dev,
    "serve": cmd_serve,
    "worker": cmd_worker,
    "migrate": cmd_migrate,
    "api-key": cmd_api_key,
    "upload": cmd_upload,
    "cache": cmd_cache,
    "backup": cmd_backup,
    "restore": cmd_restore,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    return COMMANDS[args.command](settings, args)


if __name__ == "__main__":
    sys.exit(main())
