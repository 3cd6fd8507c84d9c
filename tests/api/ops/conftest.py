"""Fixtures of the /health and monitor tests: a database and a Redis prefix of their own."""

from __future__ import annotations

from typing import Any

import pytest

from app.settings import Settings
from tests.conftest import Databases
from tests.ops_helpers import migrated_database, unique_prefix


@pytest.fixture(scope="module")
async def health_db(databases: Databases) -> str:
    """A database of the module's own: the queue depth it reports is what the module put there."""
    return await migrated_database(databases, "health")


@pytest.fixture
def base(settings: Settings, health_db: str) -> dict[str, Any]:
    """Settings under which all passes once a worker beats (disk/memory thresholds at 100%)."""
    return {
        "database_url": health_db,
        "redis_key_prefix": unique_prefix(settings, "health"),
        "health_disk_warn_percent": 100.0,
        "health_memory_warn_percent": 100.0,
    }
