"""A worker SIGKILLed in the middle of a 200,000-movement run, inside its publish transaction:
another worker takes the iteration over and it completes exactly once — one succeeded
iteration, one result, one snapshot, every movement stored once, the statistics right."""

from __future__ import annotations

import datetime as dt
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.chaos.conftest import ChaosStack, eventually, finished_iteration
from tests.chaos.test_redis_restart import metric
from tests.helpers import (
    DOCUMENT_TYPE_RULES,
    Account,
    Movement,
    assert_incidences,
    assert_statistics,
    chart_json,
    expected_incidences,
)

VOUCHERS = 100_000  # two movements each
LEASE_SECONDS = 2
CHART = {
    "1101": Account("Banco", "Bank", "current_assets"),
    "2101": Account("Proveedores", None, "current_liabilities"),  # no English name
}


def _movements() -> list[Movement]:
    """Balanced two-line vouchers, with some accounts outside the chart, some unbalanced
    vouchers and some dates outside the period, so every statistic has something to count."""
    movements = []
    for n in range(VOUCHERS):
        day = dt.date(2026, 11 if n % 500 == 0 else 10, 1 + n % 28)
        amount = Decimal(f"{1 + n % 9973}.{n % 100:02d}")
        credit = amount + Decimal("0.01") if n % 777 == 0 else amount
        debit_account = "9999" if n % 1000 == 1 else "1101"
        line = 2 + 2 * n  # the header is line 1
        movements.append(Movement(line, debit_account, day, f"V{n}", amount, Decimal(0)))
        movements.append(Movement(line + 1, "2101", day, f"V{n}", Decimal(0), credit))
    return movements


def _csv(movements: list[Movement], path: Path) -> None:
    with path.open("w") as out:
        out.write("fecha,comprobante,cuenta,glosa,debe,haber\n")
        for m in movements:
            out.write(f"{m.date},{m.voucher},{m.account_code},pago,{m.debit},{m.credit}\n")


async def test_a_worker_killed_while_publishing_completes_the_iteration_once(
    chaos_stack: ChaosStack, tmp_path: Path
) -> None:
    movements = _movements()
    ledger = tmp_path / "ledger.csv"
    _csv(movements, ledger)
    # Two connections: pg_stat_activity is frozen for the length of a transaction, so the one
    # that watches cannot be the one that holds the lock.
    holder = await asyncpg.connect(chaos_stack.dsn)
    watcher = await asyncpg.connect(chaos_stack.dsn)
    worker_env = {"ITERATION_LEASE_SECONDS": str(LEASE_SECONDS)}
    with chaos_stack.serve() as (base, _):
        async with chaos_stack.client(base) as http:
            client = (await http.post("/clients", json={"name": "Chaos"})).json()
            put = await http.put(f"/clients/{client['id']}/accounts", json=chart_json(CHART))
            assert put.status_code == 200, put.text
            closing = await http.post(
                f"/clients/{client['id']}/closings", json={"period": "2026-10"}
            )
            closing_id = closing.json()["id"]
            with ledger.open("rb") as file:
                accepted = await http.post(
                    f"/closings/{closing_id}/ledger", files={"file": ("l.csv", file)}
                )
            assert accepted.status_code == 202, accepted.text
            location = accepted.headers["Location"]

            # The worker runs the whole ledger, then its publish transaction waits for this
            # lock (the iteration row already updated in it): it is killed right there.
            hold = holder.transaction()
            await hold.start()
            await holder.execute("LOCK TABLE iteration_results IN SHARE MODE")  # writes wait
            with chaos_stack.worker(**worker_env) as first:

                async def publishing() -> Any:
                    return await watcher.fetchval(
                        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE 'INSERT INTO iteration_results%'"
                    )

                await eventually(publishing, timeout=120, what="the worker to publish")
                first.process.send_signal(signal.SIGKILL)
                first.process.wait(10)
            await hold.rollback()
            killed = await _iteration(http, location)
            assert (killed["status"], killed["movements_processed"]) == ("running", 200_000)
            assert (await http.get(f"/closings/{closing_id}/incidences")).status_code == 404

            async def lease_expired() -> bool:  # so that the next worker's sweep takes it over
                return bool(
                    await watcher.fetchval(
                        "SELECT heartbeat_at < now() - make_interval(secs => $1) "
                        "FROM iterations WHERE id = $2",
                        LEASE_SECONDS,
                        killed["id"],
                    )
                )

            await eventually(lease_expired, timeout=30, what="the lease to expire")
            with chaos_stack.worker(**worker_env):
                done = await finished_iteration(http, location, timeout=120)
            snapshot = (await http.get(f"/closings/{closing_id}/incidences")).json()
            history = (await http.get(f"/closings/{closing_id}/iterations")).json()["items"]
            jobs = metric((await http.get(f"{base}/metrics")).text, _SUCCEEDED_JOBS)
            stored = await _stored(watcher, closing_id, killed["id"])
    await holder.close()
    await watcher.close()

    assert done["status"] == "succeeded", done
    assert [(i["number"], i["status"]) for i in history] == [(1, "succeeded")]
    assert jobs == 1  # one job counted a success: the killed one never finished
    assert stored == {"attempts": 2, "results": 1, "snapshots": 1, "rows": 200_000}
    assert snapshot["iteration"] == 1 and done["movements_processed"] == 200_000
    expected = expected_incidences(movements, CHART, "2026-10")
    assert_incidences(snapshot, expected)
    assert_statistics(snapshot["statistics"], movements, expected, skipped=DOCUMENT_TYPE_RULES)


_SUCCEEDED_JOBS = 'ledger_jobs_total{outcome="succeeded"}'


async def _iteration(http: httpx.AsyncClient, location: str) -> Any:
    return (await http.get(location.removeprefix("/api/v1"))).json()


async def _stored(conn: asyncpg.Connection, closing_id: str, iteration_id: str) -> dict[str, Any]:
    """What Postgres holds for the iteration: attempts, results, snapshots, stored movements."""
    row = await conn.fetchrow(
        """
        SELECT i.attempts,
               (SELECT count(*) FROM iteration_results r WHERE r.iteration_id = i.id) AS results,
               (SELECT count(*) FROM snapshots s WHERE s.closing_id = i.closing_id) AS snapshots,
               (SELECT sum(b.row_count) FROM movement_batches b WHERE b.ledger_id = i.ledger_id)
                   AS rows
        FROM iterations i WHERE i.id = $1 AND i.closing_id = $2
        """,
        iteration_id,
        closing_id,
    )
    return dict(row)
