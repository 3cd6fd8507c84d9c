"""The snapshot of a closing and the movements behind each incidence (SPEC §6)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from starlette.responses import Response

from app.api.deps import ConnDep, SnapshotsDep, Viewer
from app.api.problems import problem_responses
from app.services.snapshot_cache import queries as incidences

router = APIRouter(prefix="/closings/{closing_id}", tags=["incidences"])

# Past any snapshot's end, and small enough to echo back in `page` (JSON integers are 64-bit).
MAX_OFFSET = 2**31 - 1


def snapshot_headers(etag: str, outcome: str) -> dict[str, str]:
    """Headers of a snapshot answer (200 or 304)."""
    return {"Cache-Control": "private, no-cache", "ETag": etag, "X-Cache": outcome}


def none_match(if_none_match: str, etag: str) -> bool:
    """Whether If-None-Match matches (RFC 9110 §13.1.2): `*` matches the current snapshot, and
    the comparison is weak, so a W/ tag (as compressing proxies rewrite ours) matches too."""
    tags = {tag.strip() for tag in if_none_match.split(",")}
    return "*" in tags or etag in {tag.removeprefix("W/") for tag in tags}


@router.get(
    "/incidences",
    summary="The closing's snapshot: consolidated incidences and statistics",
    responses={
        200: {
            "content": {"application/json": {}},
            "headers": {
                "ETag": {"description": "The snapshot's content hash, varied by the filters"},
                "X-Cache": {
                    "description": "hit: served without reading Postgres; miss: read from "
                    "Postgres and cached; bypass: Redis unavailable, read from Postgres"
                },
            },
        },
        304: {"description": "Not modified"},
        **problem_responses((404, "No such closing, or no iteration of it has succeeded yet")),
    },
)
async def get_incidences(
    closing_id: uuid.UUID,
    principal: Viewer,
    repository: SnapshotsDep,
    type: Annotated[
        str | None, Query(description="incidence type, e.g. ACCOUNT_UNCLASSIFIED")
    ] = None,
    severity: Annotated[Literal["error", "warning"] | None, Query()] = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    # No Postgres on a cache hit: a hit implies ownership, since entries are keyed by tenant
    # and only written after Postgres confirmed the closing is the tenant's.
    query = incidences.SnapshotQuery(type=type, severity=severity, limit=limit, offset=offset)
    served = await repository.get(principal.tenant_id, closing_id, query)
    etag = query.etag(served.content_hash)
    headers = snapshot_headers(etag, served.outcome)
    if if_none_match is not None and none_match(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(served.body, media_type="application/json", headers=headers)


@router.get(
    "/incidences/{key:path}/movements",
    summary="The movements behind one incidence, by line (keyset pagination)",
    responses=problem_responses(
        (404, "No such closing, no snapshot yet, or no such incidence in the snapshot")
    ),
)
async def get_movements(
    closing_id: uuid.UUID,
    key: str,
    principal: Viewer,
    conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    return await incidences.movements_page(
        conn, principal.tenant_id, closing_id, key, limit, cursor
    )
