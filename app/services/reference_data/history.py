"""The history of one account of a client: every audited change of it (SPEC §9)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.reference import account_key
from app.services.audit.read import resource_history
from app.services.tenancy.clients import get_client


async def account_history(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    client_id: uuid.UUID,
    code: str,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """The changes of the account, newest first: 404 for another tenant's client; an account
    that was never created or changed has no entries."""
    await get_client(conn, tenant_id, client_id)
    resource = ("account", account_key(code))
    return await resource_history(conn, tenant_id, client_id, resource, limit, cursor)
