"""The snapshot of a closing and the movements behind each incidence (SPEC §6)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from app.api.deps import CpuPoolDep, ReadConnDep, SnapshotsDep, Viewer
from app.api.problems import problem_responses
from app.api.schemas.snapshot import MovementsPage, Snapshot
from app.api.snapshot_view import SnapshotFilters, answer
from app.api.state import app_state
from app.services.snapshot_cache import queries

router = APIRouter(prefix="/closings/{closing_id}", tags=["incidences"])


@router.get(
    "/incidences",
    summary="The closing's snapshot: consolidated incidences and statistics",
    responses={
        200: {
            "model": Snapshot,
            "headers": {
                "ETag": {
                    "description": "The snapshot's content hash, varied by the filters and by "
                    "the representation (`-gzip` for the compressed one)",
                    "schema": {"type": "string"},
                },
                "Content-Encoding": {
                    "description": "gzip when the client accepts it (compressed once, when "
                    "the snapshot was cached: never per request)",
                    "schema": {"type": "string", "enum": ["gzip"]},
                },
                "Vary": {"schema": {"type": "string", "enum": ["Accept-Encoding"]}},
                "X-Cache": {
                    "description": "hit: served without reading Postgres; miss: read from "
                    "Postgres and cached; bypass: Redis unavailable, read from Postgres",
                    "schema": {"type": "string", "enum": ["hit", "miss", "bypass"]},
                },
            },
        },
        304: {"description": "Not modified"},
        **problem_responses((404, "No such closing, or no iteration of it has succeeded yet")),
    },
)
async def get_snapshot(
    closing_id: uuid.UUID,
    principal: Viewer,
    repository: SnapshotsDep,
    filters: Annotated[SnapshotFilters, Query()],
    if_none_match: Annotated[str | None, Header()] = None,
    accept_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    # No Postgres on a cache hit: a hit implies ownership, since entries are keyed by tenant
    # and only written after Postgres confirmed the closing is the tenant's.
    query = filters.query()
    served = await repository.get(principal.tenant_id, closing_id, query)
    status, headers, body = answer(served, query, if_none_match, accept_encoding)
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


@router.get(
    "/incidences/{key:path}/movements",
    summary="The movements behind one incidence, by line (keyset pagination)",
    response_class=Response,
    responses={
        200: {"model": MovementsPage},
        **problem_responses(
            (400, "A cursor this API did not return for this closing"),
            (404, "No such closing, no snapshot yet, or no such incidence in the snapshot"),
        ),
    },
)
async def list_movements(
    closing_id: uuid.UUID,
    key: str,
    request: Request,
    principal: Viewer,
    conn: ReadConnDep,
    cpu: CpuPoolDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Response:
    # Rendered to JSON once per page and kept (queries.movements_page): no per-request encoding.
    pages = app_state(request.app).pages
    page = await queries.movements_page(
        conn, cpu, pages, principal.tenant_id, closing_id, key, limit, cursor
    )
    return Response(page, media_type="application/json")
