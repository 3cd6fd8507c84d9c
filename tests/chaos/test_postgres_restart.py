"""Postgres stopped and started under a stream of ledger uploads to a real uvicorn, with a real
worker: an upload is either refused with a clean 503 problem+json, or accepted (202) and then
processed to `succeeded` — never a 500, never an accepted upload lost."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from tests.chaos.conftest import ChaosStack, eventually, finished_iteration

CLOSINGS = 120  # one upload per closing, at most
STREAMS = 2
PACE_SECONDS = 0.1  # between two uploads of a stream
FIRST_OUTAGE_AFTER = 12  # uploads answered before Postgres is stopped
OUTAGE_SECONDS = 2.0
UPLOADS_BETWEEN = 15  # answered after the restart before the quick stop/start
UPLOADS_AFTER = 12  # answered after the last restart before the loop ends


@dataclass(frozen=True)
class Upload:
    """One upload and its answer."""

    closing_id: str
    movements: int
    phase: str
    status: int
    location: str | None
    content_type: str
    body: Any


HEADER = "fecha,comprobante,cuenta,glosa,debe,haber\n"


def _ledger(index: int) -> tuple[bytes, int]:
    """A balanced ledger of its own size (so each snapshot can be told apart); its movements."""
    pairs = 1 + index % 7
    rows = [
        f"2026-10-{1 + n % 28:02d},V{n},{account},pago {index}.{n},{debit},{credit}\n"
        for n in range(pairs)
        for account, debit, credit in (("1101", "10.00", "0"), ("2101", "0", "10.00"))
    ]
    return (HEADER + "".join(rows)).encode(), 2 * pairs


class Run:
    """The upload loop's shared state."""

    def __init__(self, closings: list[str]) -> None:
        self.pending = list(enumerate(closings))
        self.uploads: list[Upload] = []
        self.phase = "before"
        self.answered_after_chaos: int | None = None  # set when the last restart is done

    def more(self) -> bool:
        done_after = self.answered_after_chaos
        return bool(self.pending) and (
            done_after is None or len(self.uploads) < done_after + UPLOADS_AFTER
        )


async def _uploader(http: httpx.AsyncClient, run: Run) -> None:
    while run.more():
        index, closing_id = run.pending.pop(0)
        content, movements = _ledger(index)
        phase = run.phase
        response = await http.post(
            f"/closings/{closing_id}/ledger", files={"file": ("l.csv", content)}
        )
        content_type = response.headers.get("content-type", "")
        body = response.json() if content_type.endswith("json") else response.text
        location = response.headers.get("location")
        run.uploads.append(
            Upload(closing_id, movements, phase, response.status_code, location, content_type, body)
        )
        await asyncio.sleep(PACE_SECONDS)


async def _chaos(stack: ChaosStack, run: Run) -> None:
    async def answered(count: int) -> bool:
        return len(run.uploads) >= count

    await eventually(lambda: answered(FIRST_OUTAGE_AFTER), timeout=60, what="first uploads")
    run.phase = "outage"
    await asyncio.to_thread(stack.postgres.stop)
    await asyncio.sleep(OUTAGE_SECONDS)
    await asyncio.to_thread(stack.postgres.start)
    run.phase = "restarted"
    between = len(run.uploads) + UPLOADS_BETWEEN
    await eventually(lambda: answered(between), timeout=60, what="uploads after the restart")
    # A bounce: every connection dies, and the server is back at once.
    run.phase = "bounce"
    await asyncio.to_thread(stack.postgres.stop)
    await asyncio.to_thread(stack.postgres.start)
    run.phase = "after"
    run.answered_after_chaos = len(run.uploads)


async def test_uploads_through_a_postgres_restart(chaos_stack: ChaosStack) -> None:
    # A short lease: an iteration whose worker lost Postgres mid-run is taken over soon.
    with (
        chaos_stack.worker(ITERATION_LEASE_SECONDS="2") as worker,
        chaos_stack.serve() as (base, api),
    ):
        async with chaos_stack.client(base) as http:
            client = (await http.post("/clients", json={"name": "Chaos"})).json()
            closings = []
            for n in range(CLOSINGS):
                period = f"{2000 + n // 12}-{1 + n % 12:02d}"
                created = await http.post(
                    f"/clients/{client['id']}/closings", json={"period": period}
                )
                assert created.status_code == 201, created.text
                closings.append(created.json()["id"])

            run = Run(closings)
            await asyncio.gather(
                _chaos(chaos_stack, run), *(_uploader(http, run) for _ in range(STREAMS))
            )

            accepted = [u for u in run.uploads if u.status == 202]
            finished = [
                await finished_iteration(http, str(u.location), timeout=120) for u in accepted
            ]
            served = [(await http.get(f"/closings/{u.closing_id}/incidences")) for u in accepted]
            refused = [u for u in run.uploads if u.status != 202]
            left_behind = [
                (await http.get(f"/closings/{u.closing_id}/iterations")).json()["items"]
                for u in refused
            ]
            assert worker.process.poll() is None, worker.output()
            assert api.process.poll() is None, api.output()

    by_phase = Counter((u.phase, u.status) for u in run.uploads)
    print(f"\nuploads by (phase, status): {dict(by_phase)}")
    print(
        f"accepted {len(accepted)}, refused {len(refused)}, "
        f"succeeded {sum(i['status'] == 'succeeded' for i in finished)}"
    )
    # Refusals are clean: 503 problem+json, never a 500.
    assert {u.status for u in refused} <= {503}, [u for u in refused if u.status != 503][:3]
    for u in refused:
        assert u.content_type == "application/problem+json", u
        assert u.body["status"] == 503 and u.body["title"] and u.body["detail"], u
    # The outage did refuse uploads, and uploads were accepted before, between and after.
    assert refused and {"before", "restarted", "after"} <= {u.phase for u in accepted}
    # Nothing accepted is lost: every accepted upload was processed, to the right snapshot.
    assert [i["status"] for i in finished] == ["succeeded"] * len(accepted), finished
    for upload, response in zip(accepted, served, strict=True):
        assert response.status_code == 200, response.text
        assert response.json()["statistics"]["movements_total"] == upload.movements
    # A refused upload left nothing half-done behind (at most an iteration that succeeded, if
    # Postgres committed just as the connection died).
    for items in left_behind:
        assert {i["status"] for i in items} <= {"succeeded"}, items


async def test_a_worker_connection_lost_mid_run_does_not_fail_the_iteration(
    chaos_stack: ChaosStack,
) -> None:
    # Two connections: pg_stat_activity is frozen for the length of a transaction, so the one
    # that watches cannot be the one that holds the lock.
    holder = await asyncpg.connect(chaos_stack.dsn)
    watcher = await asyncpg.connect(chaos_stack.dsn)
    with chaos_stack.worker(ITERATION_LEASE_SECONDS="2"), chaos_stack.serve() as (base, _):
        async with chaos_stack.client(base) as http:
            client = (await http.post("/clients", json={"name": "Chaos"})).json()
            closing = await http.post(
                f"/clients/{client['id']}/closings", json={"period": "2026-10"}
            )
            # Hold the publish step: the worker's INSERT waits for this lock, so its connection
            # can be cut at a known point while the server stays up.
            hold = holder.transaction()
            await hold.start()
            await holder.execute("LOCK TABLE iteration_results IN SHARE MODE")  # writes wait
            accepted = await http.post(
                f"/closings/{closing.json()['id']}/ledger", files={"file": ("l.csv", _ledger(3)[0])}
            )
            assert accepted.status_code == 202, accepted.text

            async def blocked_publish() -> Any:
                return await watcher.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'INSERT INTO iteration_results%'"
                )

            pid = await eventually(blocked_publish, timeout=60, what="the publish to wait")
            assert await watcher.fetchval("SELECT pg_terminate_backend($1)", pid)
            await hold.rollback()
            done = await finished_iteration(http, accepted.headers["Location"], timeout=60)
    attempts = await watcher.fetchval("SELECT attempts FROM iterations WHERE id = $1", done["id"])
    await holder.close()
    await watcher.close()
    # The lost connection is not the iteration's fault: the worker handed it back, and it was
    # run again as a second attempt.
    assert done["status"] == "succeeded", done
    assert attempts == 2, done
