"""Thin job functions over app.services."""

from __future__ import annotations

import uuid
from typing import Any

from app.resources import Resources
from app.services import processing, sweeper


async def process_iteration(ctx: dict[str, Any], iteration_id: str) -> str:
    """Run one iteration (idempotent: a job for a finished or taken iteration does nothing)."""
    resources: Resources = ctx["resources"]
    return await processing.run_iteration(resources, uuid.UUID(iteration_id))


async def sweep_stranded_iterations(ctx: dict[str, Any]) -> int:
    """Re-enqueue iterations whose job was lost (Redis down at upload, worker killed)."""
    resources: Resources = ctx["resources"]
    return await sweeper.sweep(resources)
