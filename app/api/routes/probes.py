"""Orchestrator probes: /alive, /ready, /health (SPEC §8). Never rate limited."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app.api.deps import ResourcesDep
from app.api.problems import problem, problem_responses
from app.api.state import app_state
from app.services.ops.probes import check_readiness, health_document

router = APIRouter(tags=["probes"])

HEALTH_JSON = "application/health+json"


@router.get("/alive", summary="Liveness: the process can serve (touches no dependency)")
async def get_alive() -> dict[str, str]:
    return {"status": "alive"}


@router.get(
    "/ready",
    summary="Readiness: Postgres and Redis answer and the schema is at the migration head",
    responses=problem_responses((503, "Not ready, or shutting down")),
)
async def get_ready(request: Request, resources: ResourcesDep) -> Response:
    state = app_state(request.app)
    if state.draining:
        return problem(
            503,
            "The service is shutting down",
            type_slug="not-ready",
            checks={"shutdown": "in_progress"},
        )
    # Checked at most once a second per process: a probe flood cannot starve the pools.
    readiness = await state.readiness.get(lambda: check_readiness(resources, state.migration_head))
    checks = {"postgres": readiness.postgres, "redis": readiness.redis}
    if not readiness.ready:
        failing = ", ".join(f"{name} is {state}" for name, state in checks.items() if state != "ok")
        return problem(503, f"Not ready: {failing}", type_slug="not-ready", checks=checks)
    return JSONResponse({"status": "ready", "checks": checks})


@router.get(
    "/health",
    summary="Health in application/health+json (draft-inadarei-api-health-check)",
    responses={200: {"content": {HEALTH_JSON: {}}}, 503: {"content": {HEALTH_JSON: {}}}},
)
async def get_health(request: Request, resources: ResourcesDep) -> Response:
    state = app_state(request.app)
    document = await state.health.get(lambda: health_document(resources, state.traffic))
    status = 503 if document["status"] == "fail" else 200
    return Response(
        orjson.dumps(document),
        status_code=status,
        media_type=HEALTH_JSON,
        headers={"Cache-Control": "no-store"},
    )
