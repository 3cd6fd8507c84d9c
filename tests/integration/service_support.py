"""Service-level tests call the services on a real Postgres connection, without HTTP."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.postgres import tables
from app.api.state import app_state
from app.services.audit.record import Actor
from app.services.iterations.request import request_iteration
from app.services.tenancy import api_keys, clients, closings


@dataclass(frozen=True)
class Owned:
    """A fresh tenant with one client and one open closing of 2026-10."""

    tenant_id: uuid.UUID
    client_id: uuid.UUID
    closing_id: uuid.UUID


def analyst(tenant_id: uuid.UUID, name: str = "svc-analyst") -> Actor:
    """An analyst of the tenant acting without an HTTP request (no key id, no request id)."""
    return Actor(tenant_id, name, "analyst")


@asynccontextmanager
async def transaction(app: FastAPI) -> AsyncIterator[AsyncConnection]:
    """One committed transaction on the suite's database."""
    async with app_state(app).require_resources().engine.begin() as conn:
        yield conn


async def owned_closing(app: FastAPI, *, with_ledger: bool = True) -> Owned:
    """Create a tenant, a client and an open closing (with a stored, empty ledger), committed."""
    async with transaction(app) as conn:
        tenant = await api_keys.ensure_tenant(conn, f"svc-{secrets.token_hex(4)}")
        actor = analyst(tenant)
        client = await clients.create_client(conn, actor, "Service test client", None)
        closing = await closings.create_closing(conn, actor, client["id"], "2026-10")
        if with_ledger:
            await give_ledger(conn, closing["id"])
    return Owned(tenant, client["id"], closing["id"])


async def give_ledger(conn: AsyncConnection, closing_id: uuid.UUID) -> None:
    """Make a stored, empty ledger the closing's (its codes unknown: not parsed yet)."""
    ledger = await conn.scalar(
        sa.insert(tables.ledgers)
        .values(closing_id=closing_id, size_bytes=0, sha256="-", layout={})
        .returning(tables.ledgers.c.id)
    )
    await conn.execute(
        sa.update(tables.closings)
        .where(tables.closings.c.id == closing_id)
        .values(ledger_id=ledger)
    )


async def second_closing(app: FastAPI, tenant: uuid.UUID, client: uuid.UUID) -> uuid.UUID:
    """Another open closing (2026-11) of the client, with a stored ledger whose codes are not
    known yet (so every change of the client's chart affects it)."""
    async with transaction(app) as conn:
        closing = await closings.create_closing(conn, analyst(tenant), client, "2026-11")
        await give_ledger(conn, closing["id"])
    return uuid.UUID(str(closing["id"]))


async def queue_iteration(app: FastAPI, tenant: uuid.UUID, closing: uuid.UUID) -> dict[str, Any]:
    """Queue an `initial` iteration of the closing, as a request does (under its lock)."""
    async with transaction(app) as conn:
        await closings.lock_open_closing(conn, tenant, closing)
        return await request_iteration(conn, closing, "initial", requested_by="svc")
