"""The Redis-first snapshot repository against real Redis and Postgres: write after publish,
the stale-set race, the stampede bound, compression, and pub/sub freshness across processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event

from app.adapters.postgres.tables import iteration_results, snapshots
from app.adapters.redis import keys
from app.adapters.redis.snapshot_cache import (
    CachePolicy,
    Event,
    SnapshotCache,
    decode,
    encode,
)
from app.api.state import app_state
from app.domain.snapshot import WHOLE, SnapshotEntry, with_gzip
from app.services.snapshot_cache import local
from app.services.snapshot_cache import repository as snapshot_repository
from app.services.snapshot_cache import writes as cache_writes
from app.services.snapshot_cache.repository import SnapshotRepository
from tests.conftest import KeyMaker, bearer
from tests.integration.snapshot_cache.support import Worker, ledger, owner, published


async def _stored(app: FastAPI, closing: uuid.UUID) -> tuple[str, bytes]:
    """(content hash, canonical document) of the closing's snapshot, straight from Postgres."""
    async with app_state(app).resources.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(snapshots.c.content_hash, iteration_results.c.document)
                .join(
                    iteration_results, iteration_results.c.iteration_id == snapshots.c.iteration_id
                )
                .where(snapshots.c.closing_id == closing)
            )
        ).one()
    return row.content_hash, row.document


async def _redis_entry(app: FastAPI, tenant: uuid.UUID, closing: uuid.UUID) -> dict[bytes, bytes]:
    prefix = app_state(app).resources.settings.redis_key_prefix
    entry: dict[bytes, bytes] = await app_state(app).resources.redis.hgetall(
        keys.snapshot(prefix, tenant, closing)
    )
    return entry


async def test_publish_writes_redis_so_the_first_read_is_a_hit(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    tenant, closing = await owner(app, await published(client, key, run_worker, ledger(6)))
    content_hash, document = await _stored(app, closing)
    entry = await _redis_entry(app, tenant, closing)
    assert (int(entry[b"v"]), entry[b"h"].decode()) == (1, content_hash)
    assert (await decode(entry[b"d"]))[0] == document

    repository: SnapshotRepository = app_state(app).snapshots
    loads = repository.postgres_loads
    response = await client.get(f"/api/v1/closings/{closing}/incidences", headers=bearer(key))
    assert response.status_code == 200
    assert response.headers["X-Cache"] == "hit"
    assert response.content == document
    assert repository.postgres_loads == loads  # not one document read from Postgres


async def test_a_slow_reader_cannot_put_back_a_superseded_snapshot(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = await make_key("analyst")
    created = await published(client, key, run_worker, ledger(6, amount=10))
    tenant, closing = await owner(app, created)
    old_hash, _ = await _stored(app, closing)
    # A second process, whose read misses (the entry was invalidated) and reloads iteration 1.
    reader = SnapshotRepository(app_state(app).resources, app_state(app).cpu)
    await reader.cache.invalidate(tenant, closings=[closing])
    loaded, resume = asyncio.Event(), asyncio.Event()
    real_load = snapshot_repository.load_snapshot

    async def slow_load(*args: Any) -> Any:
        row = await real_load(*args)
        loaded.set()
        await resume.wait()  # …and stalls before writing it back
        return row

    monkeypatch.setattr(snapshot_repository, "load_snapshot", slow_load)
    slow = asyncio.create_task(reader.get(tenant, closing, WHOLE))
    await asyncio.wait_for(loaded.wait(), 10)
    # Meanwhile iteration 2 is published (and written to Redis after its commit).
    await published(client, key, run_worker, ledger(6, amount=11), closing=created)
    new_hash, new_document = await _stored(app, closing)
    assert new_hash != old_hash
    resume.set()
    stale = await asyncio.wait_for(slow, 10)
    # What it read, then current:
    assert (stale.entry.version, stale.entry.content_hash) == (1, old_hash)

    entry = await _redis_entry(app, tenant, closing)  # the late write of iteration 1 was refused
    assert (int(entry[b"v"]), entry[b"h"].decode()) == (2, new_hash)
    assert (await decode(entry[b"d"]))[0] == new_document
    response = await client.get(f"/api/v1/closings/{closing}/incidences", headers=bearer(key))
    assert (response.headers["ETag"], response.headers["X-Cache"]) == (f'"{new_hash}-gzip"', "hit")
    await reader.aclose()


async def test_version_floor_survives_invalidation(app: FastAPI) -> None:
    resources = app_state(app).require_resources()
    policy = CachePolicy(snapshot_ttl=60, view_ttl=60, compress_min_bytes=1 << 20)
    cache = SnapshotCache(resources.redis, resources.settings.redis_key_prefix, policy)
    tenant, closing, client = uuid.uuid4(), uuid.uuid4(), str(uuid.uuid4())

    def entry(version: int) -> SnapshotEntry:
        return SnapshotEntry(version, f"h{version}", client, b"{%d}" % version)

    assert await cache.store_snapshot(tenant, closing, entry(2))
    assert not await cache.store_snapshot(tenant, closing, entry(1))
    assert await cache.invalidate(tenant, closings=[closing]) == 1
    # The payload is gone, the floor is not: a slow reader still cannot write iteration 1.
    assert not await cache.store_snapshot(tenant, closing, entry(1))
    assert await cache.read(tenant, closing, "") is None  # a miss: nothing to serve
    assert await cache.store_snapshot(tenant, closing, entry(2))
    assert await cache.store_snapshot(tenant, closing, entry(3))
    assert await cache.read(tenant, closing, "", entry(2)) == entry(3)
    known = entry(3)
    assert await cache.read(tenant, closing, "", known) is known  # current: no payload sent


async def test_one_hundred_cold_reads_cost_at_most_two_postgres_reads(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    tenant, closing = await owner(app, await published(client, key, run_worker, ledger(400)))
    content_hash, document = await _stored(app, closing)
    # Two processes' repositories (their own near caches, single flights and breakers).
    first, second = (
        SnapshotRepository(app_state(app).resources, app_state(app).cpu) for _ in range(2)
    )
    await first.cache.invalidate(tenant, closings=[closing])
    document_reads = 0

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal document_reads
        document_reads += "iteration_results" in statement

    engine = app_state(app).resources.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        served = await asyncio.gather(
            *(repo.get(tenant, closing, WHOLE) for repo in [first, second] * 50)
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert {(s.entry.content_hash, s.entry.body) for s in served} == {(content_hash, document)}
    assert 1 <= document_reads <= 2
    assert first.postgres_loads + second.postgres_loads == document_reads
    await first.aclose()
    await second.aclose()


async def _held(
    app: FastAPI, client: AsyncClient, key: str, run_worker: Worker
) -> tuple[uuid.UUID, uuid.UUID, SnapshotRepository, SnapshotEntry]:
    """A published closing whose snapshot this process holds: tenant, closing, the
    repository and the entry."""
    tenant, closing = await owner(app, await published(client, key, run_worker, ledger(40)))
    repository: SnapshotRepository = app_state(app).snapshots
    return tenant, closing, repository, (await repository.get(tenant, closing, WHOLE)).entry


async def test_a_dropped_snapshot_that_did_not_change_is_confirmed_without_its_document(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    tenant, closing, repository, held = await _held(app, client, key, run_worker)
    loads = repository.postgres_loads
    # An operator drops the client's snapshots from Redis: this process's near entry is
    # unconfirmed; the snapshot itself is unchanged.
    await repository.cache.invalidate(tenant, client=held.client_id)
    local.notify_local(Event("client", str(tenant), held.client_id))
    assert repository.fresh(tenant, closing, "") is None
    assert b"d" not in await _redis_entry(app, tenant, closing)  # the document is gone
    again = await repository.get(tenant, closing, WHOLE)
    assert again.outcome == "miss" and again.entry == held
    assert repository.postgres_loads == loads  # Postgres confirmed the version, no document
    assert (await decode((await _redis_entry(app, tenant, closing))[b"d"]))[0] == held.body
    response = await client.get(f"/api/v1/closings/{closing}/incidences", headers=bearer(key))
    assert response.status_code == 200 and response.content == held.body


@pytest.mark.parametrize("postgres_answers", [True, False])
async def test_a_reference_data_change_confirms_what_postgres_still_serves(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
    postgres_answers: bool,
) -> None:
    tenant, closing, repository, held = await _held(
        app, client, await make_key("analyst"), run_worker
    )
    loads = repository.postgres_loads

    async def unreachable(*_: object) -> dict[str, int]:
        raise OSError("connection refused")

    if not postgres_answers:  # then nothing is confirmed: everything is dropped
        monkeypatch.setattr(cache_writes.loads, "served_revisions", unreachable)
    client_id = uuid.UUID(held.client_id)
    await cache_writes.invalidate_client(app_state(app).resources, tenant, client_id)
    assert repository.fresh(tenant, closing, "") is None  # every process asks Redis again
    assert (b"d" in await _redis_entry(app, tenant, closing)) == postgres_answers
    again = await repository.get(tenant, closing, WHOLE)
    assert again.outcome == ("hit" if postgres_answers else "miss") and again.entry == held
    assert repository.postgres_loads == loads


async def test_large_snapshots_are_compressed(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    tenant, closing = await owner(app, await published(client, key, run_worker, ledger(10_000)))
    _, document = await _stored(app, closing)
    entry = await _redis_entry(app, tenant, closing)
    stored = entry[b"d"]
    response = await client.get(f"/api/v1/closings/{closing}/incidences", headers=bearer(key))
    assert len(response.json()["incidences"]) == 10_000
    saving = 1 - len(stored) / len(document)
    print(
        f"\n10k-incidence snapshot: {len(document):,} B canonical JSON, {len(stored):,} B in "
        f"Redis (its gzip representation): {saving:.1%} saved"
    )
    assert stored[:1] == b"g" and await decode(stored) == (document, stored[1:])
    assert response.headers["Content-Encoding"] == "gzip"  # those very bytes, sent as they are
    assert saving > 0.7
    threshold = app_state(app).resources.settings.cache_compress_min_bytes
    small = SnapshotEntry(1, "h", "c", b"x" * (threshold - 1))
    assert with_gzip(small, threshold) is small and encode(small)[:1] == b"r"  # raw


async def test_other_processes_drop_their_near_entry_when_a_snapshot_is_published(
    app: FastAPI, client: AsyncClient, make_key: KeyMaker, run_worker: Worker
) -> None:
    key = await make_key("analyst")
    created = await published(client, key, run_worker, ledger(6, amount=10))
    tenant, closing = await owner(app, created)
    # Another process: reached only through pub/sub, and trusting near entries for a minute.
    settings = app_state(app).resources.settings.model_copy(
        update={"cache_near_max_age_seconds": 60}
    )
    remote = SnapshotRepository(app_state(app).resources, app_state(app).cpu)
    remote.settings = settings
    local.unregister(remote.near)
    remote.start()
    for _ in range(500):  # the listener subscribes in the background
        if remote.subscribed:
            break
        await asyncio.sleep(0.01)
    assert remote.subscribed
    old = await remote.get(tenant, closing, WHOLE)
    assert (await remote.get(tenant, closing, WHOLE)).outcome == "hit"
    assert remote.near.get((str(tenant), str(closing), "")) is not None

    await published(client, key, run_worker, ledger(6, amount=12), closing=created)
    new_hash, _ = await _stored(app, closing)
    deadline = time.monotonic() + 2
    while remote.near.fresh((str(tenant), str(closing), ""), 60) is not None:
        assert time.monotonic() < deadline, "the publish was not announced"
        await asyncio.sleep(0.005)
    served = await remote.get(tenant, closing, WHOLE)
    assert (served.entry.version, served.entry.content_hash) == (old.entry.version + 1, new_hash)
    assert served.outcome == "hit"  # written to Redis by the publisher
    await remote.aclose()


async def test_reconcile_drops_a_snapshot_the_publisher_could_not_replace(
    app: FastAPI,
    client: AsyncClient,
    make_key: KeyMaker,
    run_worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = await make_key("analyst")
    created = await published(client, key, run_worker, ledger(6, amount=10))
    path = f"/api/v1/closings/{created.id}/incidences"
    old_etag = (await client.get(path, headers=bearer(key))).headers["ETag"]

    async def unreachable(*args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("Redis is unreachable from the worker")

    async def not_yet() -> int:
        return 0

    with pytest.MonkeyPatch.context() as paused:
        # The app's own periodic pass (every CACHE_RECONCILE_SECONDS) must not fix it first.
        paused.setattr(app_state(app).snapshots, "reconcile", not_yet)
        # The next publish commits in Postgres, but its Redis write fails (after its retries).
        monkeypatch.setattr(cache_writes, "PUBLISH_RETRY_DELAYS", (0.0,))
        monkeypatch.setattr(SnapshotCache, "store_snapshot", unreachable)
        await published(client, key, run_worker, ledger(6, amount=13), closing=created)
        monkeypatch.undo()
        new_hash, _ = await _stored(app, uuid.UUID(created.id))
        stale = await client.get(path, headers=bearer(key))
        assert stale.headers["ETag"] == old_etag  # what reconciling is for

    assert await app_state(app).snapshots.reconcile() >= 1
    fresh = await client.get(path, headers=bearer(key))
    assert (fresh.headers["ETag"], fresh.headers["X-Cache"]) == (f'"{new_hash}-gzip"', "miss")
    again = await client.get(path, headers=bearer(key))
    assert (again.headers["ETag"], again.headers["X-Cache"]) == (f'"{new_hash}-gzip"', "hit")
