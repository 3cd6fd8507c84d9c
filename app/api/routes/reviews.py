"""Reviews of a closing's incidences (SPEC §10)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from app.api.deps import AnalystActor, ReadConnDep, ResourcesDep, Viewer
from app.api.problems import problem_responses
from app.api.schemas import Items
from app.api.schemas.reviews import ReviewIn, ReviewOut
from app.services.reviews import store

router = APIRouter(prefix="/closings/{closing_id}", tags=["reviews"])


@router.put(
    "/reviews/{key:path}",
    response_model=ReviewOut,
    summary="Acknowledge an incidence (with a note), or open it again",
    description="The review belongs to the closing and the key: it carries over to later "
    "iterations while the key persists, and shows on the snapshot's incidence as `review` "
    "(`stale` once its figures change). A key that is resolved and comes back starts open.",
    responses=problem_responses(
        400, 403, (404, "No such closing or incidence"), (409, "The closing is closed")
    ),
)
async def put_review(
    closing_id: uuid.UUID, key: str, body: ReviewIn, actor: AnalystActor, resources: ResourcesDep
) -> dict[str, Any]:
    return await store.put_review(resources, actor, closing_id, key, body.status, body.note)


@router.get(
    "/reviews",
    response_model=Items[ReviewOut],
    summary="The closing's reviews",
    responses=problem_responses((404, "No such closing")),
)
async def list_reviews(
    closing_id: uuid.UUID, principal: Viewer, conn: ReadConnDep
) -> dict[str, Any]:
    return {"items": await store.list_reviews(conn, principal.tenant_id, closing_id)}
