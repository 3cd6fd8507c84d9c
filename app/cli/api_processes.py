"""`serve` with WEB_CONCURRENCY > 1: that many API processes on one listening socket.

A Python process computes on one core at a time, so one API process leaves the host's other
cores idle while its event loop is saturated; every wait inside a request (each statement of a
transaction holding a row lock, say) then lasts a full turn of a busy loop. The parent binds
the port and starts the processes with the socket (the kernel hands each new connection to one
of them), restarts one that stops, and on SIGTERM or SIGINT stops them all: each drains as a
lone `serve` does. Their Prometheus counts are summed through prometheus-client's multiprocess
mode, in a directory of the parent's (app/metrics.py).
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading

from app.cli.supervision import Supervised, stop_children, supervise
from app.settings import Settings

# Connections waiting to be accepted, per port (uvicorn's default).
BACKLOG = 2048
# On top of the drain: in-flight requests get this long to finish (uvicorn's graceful timeout).
GRACEFUL_SECONDS = 30.0


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, inheritable by the API processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=BACKLOG)
    listener.set_inheritable(True)
    return listener


def serve_processes(settings: Settings) -> int:
    """Run WEB_CONCURRENCY API processes until SIGTERM/SIGINT (0), or until one of them keeps
    failing at start (1)."""
    assert settings.database_url is not None and settings.redis_url is not None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with (
        bind(settings.host, settings.port) as listener,
        tempfile.TemporaryDirectory(prefix="ledger-metrics-") as metrics_dir,
    ):
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url.get_secret_value(),
            "REDIS_URL": settings.redis_url.get_secret_value(),
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        }
        fd = listener.fileno()
        children = [
            Supervised(f"API process {n + 1}", ["serve", "--listen-fd", str(fd)], env, [fd])
            for n in range(settings.web_concurrency)
        ]
        status = supervise(children, stop)
        # The processes close their copies of the socket when their drain ends; this one would
        # keep it listening, and connections would queue there unanswered instead of being
        # refused.
        listener.close()
        stop_children(
            [child.process for child in children],
            timeout=settings.shutdown_drain_seconds + GRACEFUL_SECONDS + 5,
        )
    return status
