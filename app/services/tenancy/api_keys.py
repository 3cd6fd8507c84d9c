"""Tenants and API keys: keys are random, shown once, and stored only as their sha256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from enum import IntEnum

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres.tables import api_keys, tenants
from app.domain.errors import InvalidInput
from app.services.audit.record import CLI_ROLE, Actor, Change, record
from app.settings import MIN_BOOTSTRAP_KEY_LENGTH

KEY_PREFIX = "li_"
DEFAULT_TENANT = "default"
BOOTSTRAP_NAME = "bootstrap"  # the name of BOOTSTRAP_API_KEY's key, reserved in `default`,
# and its actor in the audit trail
# The start of a key shown to operators (`api-key list`): at most this many characters, and at
# most a quarter of the key, so what is stored in clear never gives much of a key away.
PREFIX_SHOWN = 10


class Role(IntEnum):
    """Ordered roles: a higher role may do everything a lower one may."""

    viewer = 1
    analyst = 2
    admin = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        """The role called `name`, or InvalidInput."""
        try:
            return cls[name]
        except KeyError:
            raise InvalidInput(f"unknown role {name!r}; use viewer, analyst or admin") from None


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's tenant, role and name."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID
    key_name: str
    role: Role


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as listed to operators: never the secret, never the hash."""

    id: uuid.UUID
    tenant: str
    name: str
    role: str
    key_prefix: str
    created_at: str
    revoked: bool


def hash_key(key: str) -> bytes:
    """sha256 of the key: enough for 256-bit random secrets, and fast on every request."""
    return hashlib.sha256(key.encode()).digest()


def generate_key() -> str:
    """A new random key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def ensure_tenant(conn: AsyncConnection, name: str) -> uuid.UUID:
    """The id of the tenant called `name`, created if missing."""
    await conn.execute(insert(tenants).values(name=name).on_conflict_do_nothing())
    return (await conn.execute(sa.select(tenants.c.id).where(tenants.c.name == name))).scalar_one()


def _operator(tenant_id: uuid.UUID, created_by: str | None) -> Actor:
    """Keys are managed by operators (the CLI, or the service's own bootstrap), not by keys."""
    if created_by is None:
        return Actor.command_line(tenant_id)
    return Actor(tenant_id, created_by, CLI_ROLE)


def shown_prefix(key: str) -> str:
    """The part of a key stored in clear, for operators to tell keys apart."""
    return key[: min(PREFIX_SHOWN, len(key) // 4)]


async def create_key(
    conn: AsyncConnection, *, tenant: str, role: str, name: str, created_by: str | None = None
) -> str:
    """Store a new random key for the tenant, audited as created by `created_by` (default: the
    command line's user), and return it in clear, once."""
    parsed_role = Role.parse(role)
    if tenant == DEFAULT_TENANT and name == BOOTSTRAP_NAME:
        raise InvalidInput(f"the name {BOOTSTRAP_NAME!r} is reserved for BOOTSTRAP_API_KEY")
    key = generate_key()
    tenant_id = await ensure_tenant(conn, tenant)
    key_id = await conn.scalar(
        sa.insert(api_keys)
        .values(
            tenant_id=tenant_id,
            name=name,
            role=parsed_role.name,
            key_hash=hash_key(key),
            key_prefix=shown_prefix(key),
        )
        .returning(api_keys.c.id)
    )
    created = Change("api_key.created", "api_key", str(key_id), {"name": name, "role": role})
    await record(conn, _operator(tenant_id, created_by), [created])
    return key


async def ensure_bootstrap_key(conn: AsyncConnection, key: str) -> None:
    """BOOTSTRAP_API_KEY: a live admin key with that value exists for tenant `default`, and
    it is the only live bootstrap key: a previous value is revoked (and what was shown of it
    forgotten), so changing the setting is how the bootstrap key is rotated. What changes is
    audited, with `bootstrap` as its actor."""
    if len(key) < MIN_BOOTSTRAP_KEY_LENGTH:
        raise ValueError(
            f"BOOTSTRAP_API_KEY must have at least {MIN_BOOTSTRAP_KEY_LENGTH} characters"
        )
    tenant_id = await ensure_tenant(conn, DEFAULT_TENANT)
    digest = hash_key(key)
    before = (
        await conn.execute(sa.select(api_keys.c.revoked_at).where(api_keys.c.key_hash == digest))
    ).first()
    bootstrap = {
        "tenant_id": tenant_id,
        "name": BOOTSTRAP_NAME,
        "role": Role.admin.name,
        "key_prefix": shown_prefix(key),
    }
    key_id = await conn.scalar(
        insert(api_keys)
        .values(**bootstrap, key_hash=digest)
        .on_conflict_do_update(
            index_elements=[api_keys.c.key_hash], set_={**bootstrap, "revoked_at": None}
        )
        .returning(api_keys.c.id)
    )
    others = sa.and_(
        api_keys.c.tenant_id == tenant_id,
        api_keys.c.name == BOOTSTRAP_NAME,
        api_keys.c.key_hash != digest,
    )
    revoked = await conn.scalars(
        sa.update(api_keys)
        .where(others, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
        .returning(api_keys.c.id)
    )
    changes = [
        Change("api_key.revoked", "api_key", str(old), {"reason": "BOOTSTRAP_API_KEY changed"})
        for old in revoked
    ]
    await conn.execute(sa.update(api_keys).where(others).values(key_prefix=""))
    if before is None or before.revoked_at is not None:
        action = "api_key.created" if before is None else "api_key.reactivated"
        details = {"name": BOOTSTRAP_NAME, "role": Role.admin.name}
        changes.append(Change(action, "api_key", str(key_id), details))
    await record(conn, Actor(tenant_id, BOOTSTRAP_NAME, CLI_ROLE), changes)


async def authenticate(conn: AsyncConnection, key: str) -> Principal | None:
    """The principal of a live key, or None."""
    digest = hash_key(key)
    row = (
        await conn.execute(
            sa.select(
                api_keys.c.id,
                api_keys.c.tenant_id,
                api_keys.c.name,
                api_keys.c.role,
                api_keys.c.key_hash,
            ).where(api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None))
        )
    ).first()
    # The lookup is by hash; the constant-time compare guards against any index-timing oracle.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return Principal(tenant_id=row.tenant_id, key_id=row.id, key_name=row.name, role=Role[row.role])


async def list_keys(conn: AsyncConnection, tenant: str | None = None) -> list[ApiKeyInfo]:
    """Every key of every tenant (or of one), for the operator's CLI."""
    query = (
        sa.select(api_keys, tenants.c.name.label("tenant"))
        .join(tenants, tenants.c.id == api_keys.c.tenant_id)
        .order_by(tenants.c.name, api_keys.c.created_at)
    )
    if tenant is not None:
        query = query.where(tenants.c.name == tenant)
    rows = await conn.execute(query)
    return [
        ApiKeyInfo(
            id=r.id,
            tenant=r.tenant,
            name=r.name,
            role=r.role,
            key_prefix=r.key_prefix,
            created_at=r.created_at.isoformat(),
            revoked=r.revoked_at is not None,
        )
        for r in rows
    ]


async def revoke_key(
    conn: AsyncConnection, key_id: uuid.UUID, revoked_by: str | None = None
) -> bool:
    """Revoke a key by id, audited; False when no live key has that id."""
    tenant_id = await conn.scalar(
        sa.update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
        .returning(api_keys.c.tenant_id)
    )
    if tenant_id is None:
        return False
    revoked = Change("api_key.revoked", "api_key", str(key_id))
    await record(conn, _operator(tenant_id, revoked_by), [revoked])
    return True
