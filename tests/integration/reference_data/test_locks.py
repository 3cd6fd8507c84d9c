"""Reference-data writes lock what they touch: one advisory lock per code (and the client's,
shared) up to PER_CODE_LIMIT codes, the client's alone, exclusively, past it; nothing for
another tenant's client, which is not found."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.errors import NotFound
from app.services.reference_data.locks import PER_CODE_LIMIT, lock_codes
from tests.integration.service_support import owned_closing, transaction


async def _advisory_locks(conn: AsyncConnection) -> list[str]:
    """The modes of the advisory locks this connection's backend holds."""
    modes = await conn.execute(
        sa.text(
            "SELECT mode FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() ORDER BY mode"
        )
    )
    return list(modes.scalars())


async def test_a_few_codes_lock_each_code_and_share_the_client(app: FastAPI) -> None:
    owned = await owned_closing(app, with_ledger=False)
    async with transaction(app) as conn:
        await lock_codes(conn, owned.tenant_id, owned.client_id, "account", ["1101", "2101"])
        assert await _advisory_locks(conn) == ["ExclusiveLock", "ExclusiveLock", "ShareLock"]


async def test_many_codes_lock_the_client_alone(app: FastAPI) -> None:
    owned = await owned_closing(app, with_ledger=False)
    codes = [str(1000 + n) for n in range(PER_CODE_LIMIT + 1)]
    async with transaction(app) as conn:
        await lock_codes(conn, owned.tenant_id, owned.client_id, "account", codes)
        assert await _advisory_locks(conn) == ["ExclusiveLock"]


@pytest.mark.parametrize("count", [1, PER_CODE_LIMIT + 1])
async def test_another_tenants_client_is_not_found_and_nothing_is_locked(
    app: FastAPI, count: int
) -> None:
    owned = await owned_closing(app, with_ledger=False)
    codes = [str(1000 + n) for n in range(count)]
    async with transaction(app) as conn:
        with pytest.raises(NotFound):
            await lock_codes(conn, uuid.uuid4(), owned.client_id, "account", codes)
        assert await _advisory_locks(conn) == []
