"""Redis stopped and restarted under a read loop of 2,000 requests to a real uvicorn: not one read
fails (Postgres serves them), the cache circuit opens and closes, the rate limiter fails open
and counts it, /ready says 503 while Redis is away, and the worker lives through it."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.chaos.conftest import ChaosStack, eventually, finished_iteration
from tests.integration.snapshot_cache.support import ledger

READS = 2000
STREAMS = 4
OUTAGE_AFTER = 400  # reads answered before Redis is stopped
OUTAGE_UNTIL = 1200  # ... and at least this many before it is started again
TAIL = 200  # the last reads wait until the service has recovered


@dataclass(frozen=True)
class Read:
    """One read of the loop."""

    phase: str
    status: int
    x_cache: str
    etag: str
    digest: str
    limited: bool  # it carried X-RateLimit-* (the limiter could ask Redis)


@dataclass
class Observed:
    """What the loop saw, by phase: before, outage, restarted (Redis is back), recovered."""

    phase: str = "before"
    recovered: asyncio.Event = field(default_factory=asyncio.Event)
    claimed: int = 0  # reads of the loop started (the observer's own reads come on top)
    reads: list[Read] = field(default_factory=list)
    ready: list[tuple[str, int]] = field(default_factory=list)
    circuit: list[tuple[str, str, int, bool]] = field(default_factory=list)
    unlimited: int = 0  # non-exempt responses without X-RateLimit-*: let through unchecked
    done: bool = False

    def limited(self, response: httpx.Response) -> bool:
        """Whether the limiter checked this (non-exempt) response; counts those it did not."""
        checked = "x-ratelimit-limit" in response.headers
        self.unlimited += not checked
        return checked


def metric(text: str, name: str) -> float:
    """A sample's value from the Prometheus text format."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def _publish(http: httpx.AsyncClient) -> str:
    """A closing whose 40-incidence snapshot is published; its id."""
    client = (await http.post("/clients", json={"name": "Chaos"})).json()
    closing = await http.post(f"/clients/{client['id']}/closings", json={"period": "2026-10"})
    files = {"file": ("l.csv", ledger(40).encode())}
    accepted = await http.post(f"/closings/{closing.json()['id']}/ledger", files=files)
    assert accepted.status_code == 202, accepted.text
    done = await finished_iteration(http, accepted.headers["Location"], timeout=60)
    assert done["status"] == "succeeded", done
    return str(closing.json()["id"])


async def _reader(http: httpx.AsyncClient, path: str, seen: Observed) -> None:
    while seen.claimed < READS:
        slot, seen.claimed = seen.claimed, seen.claimed + 1
        if slot >= READS - TAIL:
            await seen.recovered.wait()
        await _read(http, path, seen)


async def _read(http: httpx.AsyncClient, path: str, seen: Observed) -> None:
    phase = seen.phase
    response = await http.get(path)
    seen.reads.append(
        Read(
            phase,
            response.status_code,
            response.headers.get("x-cache", ""),
            response.headers.get("etag", ""),
            hashlib.sha256(response.content).hexdigest(),
            seen.limited(response),
        )
    )


async def _circuit(http: httpx.AsyncClient, seen: Observed) -> tuple[str, int, bool]:
    """The API's cache circuit (state, times opened) from the admin cache stats, and whether
    that request was rate limited."""
    stats = await http.get("/admin/cache/stats")
    assert stats.status_code == 200, stats.text
    circuit = stats.json()["circuit"]
    return circuit["state"], circuit["opened"], seen.limited(stats)


async def _observer(
    http: httpx.AsyncClient, probes: httpx.AsyncClient, path: str, seen: Observed
) -> None:
    """/ready, the cache circuit and one read, every 50 ms, until the loop ends (this read
    keeps the circuit probing while the readers wait for the recovery)."""
    while not seen.done:
        phase = seen.phase
        seen.ready.append((phase, (await probes.get("/ready")).status_code))
        seen.circuit.append((phase, *await _circuit(http, seen)))
        await _read(http, path, seen)
        await asyncio.sleep(0.05)


async def _chaos(stack: ChaosStack, seen: Observed) -> None:
    """Stop Redis after OUTAGE_AFTER reads; start it again once the outage showed everywhere;
    let the last TAIL reads go once the service says it has recovered."""

    async def reads_done() -> bool:
        return len(seen.reads) >= OUTAGE_AFTER

    async def outage_seen() -> bool:
        return (
            len(seen.reads) >= OUTAGE_UNTIL
            and ("outage", 503) in seen.ready
            and any(phase == "outage" and state == "open" for phase, state, *_ in seen.circuit)
        )

    async def recovered() -> bool:
        # Ready, the cache circuit closed, and the limiter enforcing again (the stats call
        # carried X-RateLimit-*), all seen after the restart.
        ready, circuit = seen.ready[-1], seen.circuit[-1]
        return ready == ("restarted", 200) and circuit == ("restarted", "closed", circuit[2], True)

    await eventually(reads_done, timeout=60, what="the first reads")
    seen.phase = "outage"
    await asyncio.to_thread(stack.redis.stop)
    await eventually(outage_seen, timeout=60, what="the outage to show")
    seen.phase = "restarted"  # before the start: reads may find it back before start returns
    await asyncio.to_thread(stack.redis.start)
    await eventually(recovered, timeout=60, what="the service to recover")
    seen.phase = "recovered"
    seen.recovered.set()


async def test_reads_survive_a_redis_restart(chaos_stack: ChaosStack) -> None:
    with (
        chaos_stack.worker() as worker,
        # A short open period: the circuit probes Redis again soon after it is back. One API
        # process: the circuit is per process, and the observer must see the one that serves.
        chaos_stack.serve(CACHE_BREAKER_OPEN_SECONDS="0.5", WEB_CONCURRENCY="1") as (base, _),
    ):
        async with (
            chaos_stack.client(base) as http,
            httpx.AsyncClient(base_url=base, timeout=30) as probes,
        ):
            closing_id = await _publish(http)
            path = f"/closings/{closing_id}/incidences"
            first = await http.get(path)
            etag, digest = first.headers["etag"], hashlib.sha256(first.content).hexdigest()
            fail_open_before = metric(
                (await probes.get("/metrics")).text, "ledger_rate_limit_fail_open_total"
            )
            opened_before = (await http.get("/admin/cache/stats")).json()["circuit"]["opened"]

            seen = Observed()
            observer = asyncio.create_task(_observer(http, probes, path, seen))
            await asyncio.gather(
                _chaos(chaos_stack, seen), *(_reader(http, path, seen) for _ in range(STREAMS))
            )
            seen.done = True
            await observer
            fail_open = (
                metric((await probes.get("/metrics")).text, "ledger_rate_limit_fail_open_total")
                - fail_open_before
            )

            # The worker lived through the outage: it still runs and processes a new iteration.
            assert worker.process.poll() is None, worker.output()
            again = await http.post(f"/closings/{closing_id}/reprocess", json={"notes": "after"})
            assert again.status_code == 202, again.text
            done = await finished_iteration(http, again.headers["Location"], timeout=60)
            assert done["status"] == "succeeded", (done, worker.output())

    by_phase = Counter((read.phase, read.x_cache) for read in seen.reads)
    ready = Counter(seen.ready)
    states = Counter((phase, state) for phase, state, *_ in seen.circuit)
    opened = seen.circuit[-1][2] - opened_before
    print(
        f"\nreads by (phase, X-Cache): {dict(by_phase)}\n/ready by (phase, status): "
        f"{dict(ready)}\ncircuit by (phase, state): {dict(states)}; opened {opened} "
        f"time(s)\nrate limiter fail-opens: {fail_open:.0f}"
    )

    assert seen.claimed == READS and len(seen.reads) > READS
    failed = [read for read in seen.reads if read.status != 200]
    assert not failed, failed[:5]  # not one failed read
    assert {(read.etag, read.digest) for read in seen.reads} == {(etag, digest)}  # all alike
    outage = [read.x_cache for read in seen.reads if read.phase == "outage"]
    # Served from Postgres while Redis was away (the first few may still be near-cache hits).
    assert outage[-50:] == ["bypass"] * 50
    # Back to the cache, and to enforced limits, once recovered.
    tail = [(read.x_cache, read.limited) for read in seen.reads if read.phase == "recovered"]
    assert len(tail) >= TAIL and set(tail) == {("hit", True)}

    assert ready["before", 503] == 0 and ready["outage", 503] > 0
    assert ready["recovered", 503] == 0

    assert states["outage", "open"] > 0 and opened >= 1
    assert states["recovered", "open"] == states["recovered", "half_open"] == 0

    # Every request let through unchecked was counted, and only those.
    assert fail_open == seen.unlimited > 0
