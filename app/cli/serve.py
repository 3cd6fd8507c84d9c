"""uvicorn with a drain phase: SIGTERM flips /ready to 503 at once, keeps serving for
SHUTDOWN_DRAIN_SECONDS so load balancers stop routing here, then stops accepting connections
and lets in-flight requests finish."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from app.state import app_state


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
