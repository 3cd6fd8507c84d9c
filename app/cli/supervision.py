"""Child processes kept running: started again when one stops, within a restart budget (the
`dev` command's API and worker, `serve`'s API processes)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> Callable[[], None]:
    """For the child, between fork and exec: be sent SIGTERM when the parent dies, however it
    dies (SIGKILL included), so that no orphan keeps serving, or holding the port a restarted
    parent needs. Linux only; elsewhere a child outlives a killed parent."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None

    def preexec() -> None:
        if libc is None:
            return
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before prctl took effect
            os._exit(1)

    return preexec


class Supervised:
    """A child process (`ledger-incidences <args>`) that is started again whenever it stops.

    Restart budget: a child that ran at least HEALTHY_AFTER_SECONDS before stopping is simply
    restarted (after a second). One that stops sooner is restarted after a pause that doubles
    each time (1, 2, 4, 8, 16 s); past RESTART_LIMIT such quick failures in a row it is beyond
    restarting (a port taken, a broken setting) and the supervisor gives up rather than loop
    forever.
    """

    RESTART_LIMIT = 5
    HEALTHY_AFTER_SECONDS = 60.0

    def __init__(
        self, name: str, args: Sequence[str], env: dict[str, str], pass_fds: Sequence[int] = ()
    ) -> None:
        self.name = name
        self.args = [sys.executable, "-m", "app.cli", *args]
        self.env = env
        self.pass_fds = tuple(pass_fds)
        self.quick_failures = 0
        self.restart_at: float | None = None
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self.started_at = time.monotonic()
        return subprocess.Popen(
            self.args, env=self.env, pass_fds=self.pass_fds, preexec_fn=_die_with(os.getpid())
        )

    def exited(self, now: float) -> float | None:
        """When the child stopped since the last call, the pause before its restart (then
        scheduled); else None."""
        if self.restart_at is not None or self.process.poll() is None:
            return None
        quick = now - self.started_at < self.HEALTHY_AFTER_SECONDS
        self.quick_failures = self.quick_failures + 1 if quick else 0
        pause = min(2.0 ** max(self.quick_failures - 1, 0), 16.0)
        self.restart_at = now + pause
        return pause

    @property
    def exhausted(self) -> bool:
        """Whether it failed quickly too many times in a row to be worth starting again."""
        return self.quick_failures > self.RESTART_LIMIT

    def restart_if_due(self, now: float) -> None:
        """Start the child again once its pause is over."""
        if self.restart_at is not None and now >= self.restart_at:
            self.restart_at = None
            self.process = self._start()
            logger.warning("the %s was restarted (pid %d)", self.name, self.process.pid)


def supervise(children: list[Supervised], stop: threading.Event) -> int:
    """Restart whichever child stops, until Ctrl+C (0) or a child's budget is spent (1)."""
    while not stop.wait(0.5):
        now = time.monotonic()
        for child in children:
            pause = child.exited(now)
            if pause is not None and not stop.is_set():
                if child.exhausted:
                    logger.error(
                        "the %s stopped %d times in a row within %.0f s of its start; giving up",
                        child.name,
                        child.quick_failures,
                        child.HEALTHY_AFTER_SECONDS,
                    )
                    return 1
                logger.warning(
                    "the %s stopped (exit status %s); restarting it in %.0f s",
                    child.name,
                    child.process.returncode,
                    pause,
                )
            child.restart_if_due(now)
    return 0


def stop_children(children: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM each child, and SIGKILL those still running after `timeout` seconds."""
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
