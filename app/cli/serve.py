"""`ledger-incidences serve` and `worker`. The API runs in uvicorn with a drain phase: SIGTERM
flips /ready to 503 at once, keeps serving for SHUTDOWN_DRAIN_SECONDS so load balancers stop
routing here, then stops accepting connections and lets in-flight requests finish."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.api.state import app_state
from app.cli.api_processes import serve_processes
from app.cli.context import resolved
from app.main import create_app
from app.memory import tune_malloc
from app.settings import Settings

# The request line and headers of one request, at most (nginx allows 32 KiB by default).
MAX_HEAD_BYTES = 64 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with each request's line and headers bounded.

    llhttp sets no bound, and httptools gathers a header value (uvicorn the URL) by
    concatenation: one endless header would cost memory and quadratic time before any of our
    code sees the request. Bytes received while a request's head is incomplete are counted;
    past MAX_HEAD_BYTES the request is answered 431 and the connection closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            detail = f"The request line and headers are over {MAX_HEAD_BYTES} bytes"
            body = orjson.dumps(
                {"type": "about:blank", "title": "Request Header Fields Too Large",
                 "status": 431, "detail": detail}
            )  # fmt: skip
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/problem+json\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True  # the next request's head comes next
        super().on_message_complete()


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


def serve(settings: Settings, listener: socket.socket | None = None) -> None:
    """Run the API until a signal stops it, on `listener` when given (one of several API
    processes), else on HOST:PORT."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=BoundedHttpToolsProtocol,
        log_config=None,  # our JSON logging is already configured
        access_log=False,
        proxy_headers=False,  # client IPs are resolved by our own TRUSTED_PROXIES logic
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    server = DrainingServer(config, app, settings.shutdown_drain_seconds)
    # What exists by now (modules, routes, schemas: some 170,000 objects) lives as long as the
    # process: frozen out of the garbage collector, a full collection scans only what requests
    # made since. Each is a pause of the event loop: 100-200 ms before, 20-70 ms after
    # (bench/load.py, two cores).
    gc.collect()
    gc.freeze()
    server.run(sockets=[listener] if listener is not None else None)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    if args.listen_fd is not None:  # one of the processes started by serve_processes
        serve(settings, socket.socket(fileno=args.listen_fd))
        return 0
    with resolved(settings) as concrete:
        if concrete.web_concurrency > 1:
            return serve_processes(concrete)
        serve(concrete)
    return 0


# Added to the worker's scheduling niceness (0 is the default; 19 the lowest priority).
WORKER_NICENESS = 10


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    tune_malloc()
    from workers.settings import check_worker_health, run_worker

    with resolved(settings) as concrete:
        if args.check:
            return 0 if asyncio.run(check_worker_health(concrete)) else 1
        # Re-processing is background work: where the worker shares cores with the API (the
        # dev command, a small host), reads must not queue behind it. Measured with
        # bench/load.py on two cores: cached snapshot reads p99 430-470 ms instead of 700-830,
        # at the same throughput or better. Alone on its host it changes nothing.
        os.nice(WORKER_NICENESS)
        run_worker(concrete)
    return 0


def register(commands: Any) -> None:
    """The `serve` and `worker` subcommands."""
    serve_parser = commands.add_parser("serve", help="run the HTTP API")
    # Internal: the listening socket inherited from the parent of several API processes.
    serve_parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    serve_parser.set_defaults(handler=cmd_serve)
    worker = commands.add_parser("worker", help="run a background worker")
    worker.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker heartbeat is fresh, else 1 (for healthchecks)",
    )
    worker.set_defaults(handler=cmd_worker)
