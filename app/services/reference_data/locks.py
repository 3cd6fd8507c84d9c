"""Which reference-data writes of a client wait for one another: those touching the same codes.

A write reads the rows it is about to change, to count what it creates and updates and to audit
each field's before/after; another write of the same codes must not slip in between. Locking
the client made every write of a client wait for the one before it, however unrelated: a busy
client's edits queued one behind another, each holding the lock for all its statements. Here a
write of at most PER_CODE_LIMIT codes takes one transaction-scoped advisory lock per code, in a
fixed order (no deadlock), and shares the client's lock; a larger one (a whole chart) takes the
client's lock exclusively instead, so the number of locks held stays bounded.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.advisory import lock_key
from app.adapters.postgres.tables import clients
from app.domain.errors import NotFound

# Codes a write may lock one by one; Postgres's lock table holds max_locks_per_transaction (64)
# locks per connection on average.
PER_CODE_LIMIT = 32


async def lock_codes(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    client_id: uuid.UUID,
    resource: str,
    codes: Collection[str],
) -> None:
    """Wait until no other transaction writes these codes of the tenant's client's `resource`
    (account, document_type), and keep them until this one ends; NotFound for another
    tenant's client. One statement, and no lock at all unless the client is the tenant's."""
    values = {
        "tenant_id": tenant_id,
        "client_id": client_id,
        "client_key": lock_key("reference-data", str(client_id)),
    }
    if len(codes) > PER_CODE_LIMIT:
        found = await conn.scalar(_LOCK_CLIENT, values)
    else:
        code_keys = sorted(lock_key(resource, str(client_id), code) for code in codes)
        found = await conn.scalar(_LOCK_CODES, {**values, "code_keys": code_keys})
    if found is None:
        raise NotFound(f"client {client_id} not found")


# Built once, with named parameters.
_CLIENT_KEY = sa.bindparam("client_key", type_=sa.BigInteger)
_TENANTS_CLIENT = (
    clients.c.id == sa.bindparam("client_id"),
    clients.c.tenant_id == sa.bindparam("tenant_id"),
)
_LOCK_CLIENT = sa.select(clients.c.id, sa.func.pg_advisory_xact_lock(_CLIENT_KEY)).where(
    *_TENANTS_CLIENT
)
_CODE_KEYS = (
    sa.func.unnest(sa.bindparam("code_keys", type_=pg.ARRAY(sa.BigInteger)))
    .table_valued("key")
    .render_derived()
)
# The select list is evaluated in order: the client's lock is shared first, then each code's is
# taken, in the order of the array (sorted).
_LOCK_CODES = sa.select(
    clients.c.id,
    sa.func.pg_advisory_xact_lock_shared(_CLIENT_KEY),
    sa.select(sa.func.count(sa.func.pg_advisory_xact_lock(_CODE_KEYS.c.key))).scalar_subquery(),
).where(*_TENANTS_CLIENT)
