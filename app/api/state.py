"""What the API process keeps between requests, as one typed object instead of ad-hoc
attributes on Starlette's `app.state`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from starlette.applications import Starlette

from app.adapters.cpu_pool import CpuPool
from app.api.callers import KnownKeys, PrincipalCache
from app.resources import Resources
from app.services.iterations.history import DiffKey, diff_cache
from app.services.ops.probe_memo import ProbeMemo
from app.services.ops.probes import Readiness
from app.services.ops.traffic import TrafficWindow
from app.services.snapshot_cache.queries import PageKey, page_cache
from app.services.snapshot_cache.repository import SnapshotRepository
from app.settings import Settings


@dataclass
class AppState:
    """Built with the app; `resources` and `snapshots` exist while the lifespan runs."""

    settings: Settings
    migration_head: str | None
    principals: PrincipalCache  # key hash → principal, for AUTH_CACHE_TTL_SECONDS
    known_keys: KnownKeys  # key hash → key id or invalid: the rate limiter's subject
    cpu: CpuPool  # CPU-heavy reads run here, never on the event loop
    health: ProbeMemo[dict[str, Any]] = field(default_factory=ProbeMemo)  # once a second
    traffic: TrafficWindow = field(default_factory=TrafficWindow)  # /health's window
    readiness: ProbeMemo[Readiness] = field(default_factory=ProbeMemo)  # once a second
    diffs: LRUCache[DiffKey, bytes] = field(default_factory=diff_cache)  # computed diffs
    pages: LRUCache[PageKey, bytes] = field(default_factory=page_cache)  # movement pages
    draining: bool = False  # set on SIGTERM: /ready answers 503 from then on
    resources: Resources | None = None
    snapshots: SnapshotRepository | None = None

    def require_resources(self) -> Resources:
        """The resources; RuntimeError outside the lifespan."""
        if self.resources is None:
            raise RuntimeError("the application's lifespan has not started")
        return self.resources


def app_state(app: Starlette) -> AppState:
    """The AppState of an application built by create_app()."""
    state: AppState = app.state.ledger
    return state
