"""`ledger-incidences serve` and `worker`. The API runs in uvicorn with a drain phase: SIGTERM
flips /ready to 503 at once, keeps serving for SHUTDOWN_DRAIN_SECONDS so load balancers stop
routing here, then stops accepting connections and lets in-flight requests finish."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from app.api.state import app_state
from app.cli.context import resolved
from app.main import create_app
from app.settings import Settings


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM/SIGINT starts a drain instead of stopping at once."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_seconds = drain_seconds
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self._drain_seconds <= 0:
            self._stop(sig)  # a second signal stops without waiting
            return
        self._draining = True
        app_state(self._app).draining = True
        timer = threading.Timer(self._drain_seconds, self._stop, args=(sig,))
        timer.daemon = True
        timer.start()

    def _stop(self, sig: int) -> None:
        # uvicorn's own handle_exit records the signal and re-raises it once shut down, so the
        # process would die of SIGTERM (exit 143). A requested stop is a clean exit: status 0.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def serve(settings: Settings) -> None:
    """Run the API until a signal stops it."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # our JSON logging is already configured
        access_log=False,
        proxy_headers=False,  # client IPs are resolved by our own TRUSTED_PROXIES logic
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    DrainingServer(config, app, settings.shutdown_drain_seconds).run()


def cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
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


def register(commands: Any) -> None:
    """The `serve` and `worker` subcommands."""
    commands.add_parser("serve", help="run the HTTP API").set_defaults(handler=cmd_serve)
    worker = commands.add_parser("worker", help="run a background worker")
    worker.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker heartbeat is fresh, else 1 (for healthchecks)",
    )
    worker.set_defaults(handler=cmd_worker)
