"""Helpers of the snapshot cache tests: ledgers, published closings, and a Redis proxy that
can be cut (connections refused) or black-holed (connections hang) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlparse

from fastapi import FastAPI
from httpx import AsyncClient

from app.api.state import app_state
from app.services.snapshot_cache import loads as snapshot_loads
from tests.conftest import Worker
from tests.helpers import Closing, create_closing, upload

HEADER = "fecha,comprobante,cuenta,glosa,debe,haber\n"


def ledger(accounts: int, *, period: str = "2026-10", amount: int = 10) -> str:
    """One balanced voucher over `accounts` (even) distinct codes, none in a chart: one
    ACCOUNT_NOT_IN_CHART incidence per code. Another `amount` gives another content hash."""
    lines = [
        f"{period}-{1 + i % 28:02d},V1,{700000 + i},glosa {i},"
        + (f"{amount}.00,0" if i % 2 == 0 else f"0,{amount}.00")
        for i in range(accounts - accounts % 2)
    ]
    return HEADER + "\n".join(lines) + "\n"


async def owner(app: FastAPI, closing: Closing) -> tuple[uuid.UUID, uuid.UUID]:
    """(tenant, closing id) as the repository takes them."""
    async with app_state(app).resources.engine.connect() as conn:
        tenant, _ = await snapshot_loads.owner(conn, uuid.UUID(closing.id))
    return tenant, uuid.UUID(closing.id)


async def published(
    client: AsyncClient, key: str, run_worker: Worker, content: str, closing: Closing | None = None
) -> Closing:
    """A closing (new unless given) whose uploaded ledger has been processed."""
    closing = closing or await create_closing(client, key)
    response = await upload(client, key, closing.id, content.encode())
    assert response.status_code == 202, response.text
    await run_worker()
    return closing


class RedisProxy:
    """TCP proxy on 127.0.0.1 in front of the suite's Redis (unix socket or TCP)."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream = urlparse(upstream_url)
        self.mode = "up"  # up | down (refuse) | hang (accept, never answer)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """redis-py URL of the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        """Stop listening and drop every connection."""
        self._drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def set_mode(self, mode: str) -> None:
        """Change the mode; leaving `up` drops every open connection at once."""
        self.mode = mode
        if mode != "up":
            self._drop()

    def _drop(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.upstream.scheme == "unix":
            return await asyncio.open_unix_connection(self.upstream.path)
        return await asyncio.open_connection(self.upstream.hostname, self.upstream.port or 6379)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "down":
            writer.transport.abort()
            return
        self._writers.add(writer)
        if self.mode == "hang":
            return  # held open, never answered: the client pays its timeout
        up_reader, up_writer = await self._open_upstream()
        self._writers.add(up_writer)
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@contextlib.asynccontextmanager
async def redis_proxy(upstream_url: str) -> AsyncIterator[RedisProxy]:
    """A running proxy, closed afterwards."""
    proxy = RedisProxy(upstream_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.aclose()
