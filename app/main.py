"""The ASGI application: create_app(settings) wires lifespan, error handlers and routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from app import __version__
from app.adapters.cpu_pool import CpuPool
from app.api.callers import KnownKeys, PrincipalCache
from app.api.middleware.body_limit import BodyLimitMiddleware
from app.api.middleware.compression import CompressionMiddleware
from app.api.middleware.head import HeadAsGetMiddleware
from app.api.middleware.metrics import MetricsMiddleware
from app.api.middleware.rate_limit import RateLimitMiddleware
from app.api.middleware.request_id import RequestIdMiddleware
from app.api.middleware.snapshot_reads import SnapshotReadFastPath
from app.api.problems import install_problem_handlers, install_problem_openapi, problem_responses
from app.api.routes import (
    admin,
    audit,
    clients,
    closings,
    incidences,
    iterations,
    probes,
    reference_data,
    reviews,
)
from app.api.routes import metrics as metrics_route
from app.api.state import AppState
from app.api.ui import router as console
from app.api.unavailable import install_unavailable_handlers
from app.migrations import head_revision
from app.resources import Resources
from app.services.snapshot_cache.repository import SnapshotRepository
from app.services.tenancy.api_keys import ensure_bootstrap_key
from app.settings import Settings

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def operation_id(route: APIRoute) -> str:
    """The route function's name in camelCase (upload_ledger → uploadLedger): short and stable
    names for generated clients, instead of FastAPI's `upload_ledger_api_v1_closings_…_post`."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def create_app(settings: Settings) -> FastAPI:
    """Build the application; resources are opened by the lifespan, not here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = Resources.build(settings)
        snapshots = SnapshotRepository(resources, state.cpu)
        state.resources, state.snapshots = resources, snapshots
        snapshots.start()
        if settings.bootstrap_api_key is not None:
            try:
                async with resources.engine.begin() as conn:
                    await ensure_bootstrap_key(conn, settings.bootstrap_api_key.get_secret_value())
            except Exception as exc:  # Postgres not up yet: /ready says so; don't crash-loop
                logger.warning("could not ensure the bootstrap API key: %s", type(exc).__name__)
        try:
            yield
        finally:
            state.draining = True
            await snapshots.aclose()
            await resources.aclose()
            state.cpu.close()
            state.resources = state.snapshots = None

    # Swagger UI 5 and ReDoc are served from the package's own static files: no CDN.
    app = FastAPIOffline(
        title="Ledger Incidences",
        version=__version__,
        summary="Pre-computed general-ledger incidences for monthly closings.",
        lifespan=lifespan,
        static_url="/docs-assets",
        redoc_url=None,  # ReDoc fetches its logo from a CDN; Swagger UI is fully local
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        generate_unique_id_function=operation_id,
    )
    state = AppState(
        settings=settings,
        migration_head=head_revision(),
        principals=PrincipalCache(settings.auth_cache_ttl_seconds),
        known_keys=KnownKeys(),
        cpu=CpuPool(settings.cpu_pool_processes, settings.cpu_pool_queue),
    )
    app.state.ledger = state
    install_problem_handlers(app)
    install_unavailable_handlers(app)  # Postgres/Redis unreachable: 503, not 500
    install_problem_openapi(app)
    # Innermost: hot snapshot reads are answered here, still behind the rate limiter.
    app.add_middleware(SnapshotReadFastPath)
    # Bodies are bounded before any route reads them; behind the rate limiter, so a flood of
    # refused bodies is limited too, and its key lookup tells which keys are known invalid.
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    # Add request-id/metrics middleware after: they wrap it.
    app.add_middleware(RateLimitMiddleware, settings=settings, known_keys=state.known_keys)
    # Other JSON answers are compressed per request for clients that accept gzip (large ones in
    # a thread); snapshots pass through it, already compressed once when they were cached.
    app.add_middleware(CompressionMiddleware)

    app.include_router(probes.router)
    app.include_router(metrics_route.router)
    api = APIRouter(prefix=API_PREFIX, responses=problem_responses(401, 413, 429, 503))
    api.include_router(clients.router)
    api.include_router(reference_data.router)
    api.include_router(closings.router)
    api.include_router(iterations.router)
    api.include_router(incidences.router)
    api.include_router(reviews.router)
    api.include_router(admin.router)
    api.include_router(audit.router)
    app.include_router(api)
    app.include_router(console.router)  # the web console at /ui (SPEC §11)
    app.add_middleware(HeadAsGetMiddleware)  # wraps all the above: HEAD is a GET to them
    # Added last = outermost: every response (429s included) is counted and carries its id.
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
