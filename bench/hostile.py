"""Hostile-input benchmark (issue #16): what refused bodies cost the API, /alive while viewers
flood it with heavy reads, and a worker whose lease is stolen mid-parse.

Starts the API and a worker as real processes (`ledger-incidences serve` / `worker`), measures
the API's peak RSS growth per refused body from /proc (VmHWM, reset through clear_refs before
each case), publishes a closing of --incidences incidences twice, then runs --viewers viewers
reading diffs, filtered views and drill-downs for --flood-seconds while a prober times /alive
(and checks /ready), steals a lease mid-parse, and uploads the hostile ledger files of
bench/hostile_files.py. Prints one line per figure. tests/chaos/test_hostile.py asserts the
same figures through the functions below (and those of bench/hostile_files.py).

Usage: .venv/bin/python bench/hostile.py [--incidences 40000] [--flood-seconds 20] [--viewers 4]
Servers: DATABASE_URL / REDIS_URL when set (a fresh database is created on that server and
dropped afterwards), else embedded ones in a temporary DATA_DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import CLI, admin_dsn, bench_stack, free_port, stop, wait_ready

T = TypeVar("T")
MIB = 1024 * 1024
API = "/api/v1"
# The figures the issue asks for (tests/chaos/test_hostile.py asserts them).
MAX_REFUSED_GROWTH_MIB = 64
MAX_ALIVE_P99_MS = 250
MAX_WORKER_PEAK_MIB = 512

# --- memory of a process, from /proc -------------------------------------------------------------


def status_kib(pid: int, field_name: str) -> int:
    """A size field of /proc/PID/status (VmRSS, VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise LookupError(field_name)


def peak_growth(pid: int, action: Callable[[], T]) -> tuple[T, float]:
    """Run `action`; how far (MiB) the process's resident set rose above where it started."""
    before = status_kib(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    result = action()
    return result, (status_kib(pid, "VmHWM") - before) / 1024


# --- refused bodies: a raw HTTP/1.1 client that stops sending once the server answers ------------


def send(port: int, head: str, body: Iterator[bytes]) -> int:
    """Send a request head then its body; the status of the answer, which may come (and the
    connection close) long before the body is all sent. 0 when no answer came."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in body:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered: the rest is not read
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed
        reply = b""
        try:
            while b"\r\n" not in reply:
                data = sock.recv(4096)
                if not data:
                    break
                reply += data
        except (ConnectionResetError, TimeoutError):
            pass
        return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


def _pieces(repeats: int, fill: bytes, start: bytes, end: bytes) -> Iterator[bytes]:
    """`start`, `fill` `repeats` times, then `end`, in pieces of about 64 KiB (each a whole
    number of `fill`s, so the body stays well-formed)."""
    yield start
    per_block = max(1, 64 * 1024 // len(fill))
    for done in range(0, repeats, per_block):
        yield fill * min(per_block, repeats - done)
    yield end


def _chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        if piece:
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


@dataclass(frozen=True)
class BodyCase:
    """A hostile body, and the status it must get."""

    name: str
    method: str
    path: str  # may name {client} and {closing}
    content_type: str
    size: int  # about: a whole number of `fill`s
    fill: bytes = b"x"
    expect: int = 0
    with_key: bool = True
    chunked: bool = False
    start: bytes = b""
    end: bytes = b""

    @property
    def repeats(self) -> int:
        """How many `fill`s make the body about `size` bytes."""
        return (self.size - len(self.start) - len(self.end)) // len(self.fill)

    @property
    def length(self) -> int:
        return len(self.start) + self.repeats * len(self.fill) + len(self.end)

    def head(self, key: str, ids: dict[str, str]) -> str:
        auth = f"Authorization: Bearer {key}\r\n" if self.with_key else ""
        framing = (
            "Transfer-Encoding: chunked\r\n"
            if self.chunked
            else f"Content-Length: {self.length}\r\n"
        )
        return (
            f"{self.method} {API}{self.path.format(**ids)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"{auth}Content-Type: {self.content_type}\r\n{framing}\r\n"
        )

    def body(self) -> Iterator[bytes]:
        pieces = _pieces(self.repeats, self.fill, self.start, self.end)
        return _chunked(pieces) if self.chunked else pieces


_BOUNDARY = "hostile-boundary"
_MULTIPART = f"multipart/form-data; boundary={_BOUNDARY}"
_FILE_PART = (
    f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="l.csv"\r\n\r\n'
    "fecha,comprobante,cuenta,debe,haber\n"
).encode()
_NAME = {"start": b'{"name": "', "end": b'"}'}  # a JSON object with one long name
_ITEMS = {"fill": b"{},", "start": b"[", "end": b"{}]"}  # a JSON array of empty objects
_ROWS = {"fill": b"1,n\n", "start": b"code,name\n"}  # CSV rows
_ACCOUNTS = ("PUT", "/clients/{client}/accounts")
BODY_CASES = [
    BodyCase("JSON 50 MiB, no key", "POST", "/clients", "application/json", 50 * MIB, b"x", 413,
             with_key=False, **_NAME),
    BodyCase("JSON 50 MiB, key", "POST", "/clients", "application/json", 50 * MIB, b"x", 413,
             **_NAME),
    BodyCase("JSON 50 MiB chunked, no key", "POST", "/clients", "application/json", 50 * MIB,
             b"x", 401, with_key=False, chunked=True, **_NAME),
    BodyCase("JSON 50 MiB chunked, key", "POST", "/clients", "application/json", 50 * MIB,
             b"x", 413, chunked=True, **_NAME),
    BodyCase("form 50 MiB chunked, key", "POST", "/clients",
             "application/x-www-form-urlencoded", 50 * MIB, b"a=1&", 413, chunked=True),
    BodyCase("multipart 50 MiB to /clients", "POST", "/clients", _MULTIPART, 50 * MIB, b"x",
             413, start=_FILE_PART),
    BodyCase("JSON 1 MiB of 350k objects, key", "POST", "/clients", "application/json", MIB,
             expect=422, **_ITEMS),
    BodyCase("bulk CSV 64 MiB chunked", *_ACCOUNTS, "text/csv", 64 * MIB, expect=413,
             chunked=True, **_ROWS),
    BodyCase("bulk JSON 16 MiB of 5.6M items", *_ACCOUNTS, "application/json", 16 * MIB,
             expect=422, **_ITEMS),
    BodyCase("bulk CSV 16 MiB of 4M rows", *_ACCOUNTS, "text/csv", 16 * MIB, expect=422,
             **_ROWS),
    BodyCase("bulk JSON 16 MiB in one string", *_ACCOUNTS, "application/json", 16 * MIB, b"n",
             422, start=b'[{"code": "1", "name": "', end=b'"}]'),
    BodyCase("ledger over MAX_UPLOAD_BYTES, chunked", "POST", "/closings/{closing}/ledger",
             _MULTIPART, 80 * MIB, b"2026-10-01,V1,1101,1,0\n", 413, chunked=True,
             start=_FILE_PART),
]  # fmt: skip


@dataclass(frozen=True)
class HeadCase:
    """A hostile request line or header: `start`, then `size` bytes of `x`, then `end`."""

    name: str
    start: bytes
    end: bytes
    size: int = 100 * MIB
    expect: int = 431

    def pieces(self) -> Iterator[bytes]:
        return _pieces(self.size // 64, b"x" * 64, self.start, self.end)


HEAD_CASES = [
    HeadCase("header of 100 MiB, no key", b"GET /alive HTTP/1.1\r\nX-Big: ", b"\r\n\r\n"),
    HeadCase("URL of 100 MiB, no key", b"GET /alive?q=", b" HTTP/1.1\r\nHost: x\r\n\r\n"),
]


@dataclass(frozen=True)
class Refusal:
    name: str
    expect: int
    status: int
    growth_mib: float
    seconds: float


def refuse_bodies(port: int, api_pid: int, key: str, ids: dict[str, str]) -> list[Refusal]:
    """Every head and body case against the API; its answer and the API's peak RSS growth."""
    requests = [(c.name, c.expect, "", c.pieces) for c in HEAD_CASES] + [
        (c.name, c.expect, c.head(key, ids), c.body) for c in BODY_CASES
    ]
    results = []
    for name, expect, head, body in requests:
        started = time.perf_counter()
        status, growth = peak_growth(api_pid, lambda h=head, b=body: send(port, h, b()))
        results.append(Refusal(name, expect, status, growth, time.perf_counter() - started))
    return results


# --- a closing of many incidences, published twice -----------------------------------------------


def ledger(rows: int, amount: str, accounts: int | None = None) -> bytes:
    """One balanced voucher of `rows` movements over `accounts` codes (one per movement by
    default), none in the (empty) chart: one incidence per code."""
    lines = [
        f"2026-10-{1 + i % 28:02d},V1,{700000 + i % (accounts or rows)},pago {i},"
        + (f"{amount},0" if i % 2 == 0 else f"0,{amount}")
        for i in range(rows + rows % 2)
    ]
    return ("fecha,comprobante,cuenta,glosa,debe,haber\n" + "\n".join(lines) + "\n").encode()


def wait_iteration(http: httpx.Client, location: str, timeout: float = 600) -> dict[str, Any]:
    """Poll an iteration until it has finished."""
    deadline = time.monotonic() + timeout
    while (iteration := http.get(location).json())["status"] not in ("succeeded", "failed"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"iteration {location} still {iteration['status']}")
        time.sleep(0.2)
    return iteration  # type: ignore[no-any-return]


def setup(base: str, key: str, incidences: int) -> dict[str, str]:
    """A client and a closing whose two iterations each published `incidences` incidences
    (every amount changed in between, so their diff changes every one)."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as h:
        client = h.post(f"{API}/clients", json={"name": "Hostile"}).raise_for_status().json()
        closing = h.post(f"{API}/clients/{client['id']}/closings", json={"period": "2026-10"})
        closing_id = closing.raise_for_status().json()["id"]
        for amount in ("10.00", "11.00"):
            files = {"file": ("l.csv", ledger(incidences, amount))}
            accepted = h.post(f"{API}/closings/{closing_id}/ledger", files=files)
            done = wait_iteration(h, accepted.raise_for_status().headers["Location"])
            assert done["status"] == "succeeded", done
    return {"client": client["id"], "closing": closing_id}


# --- the viewer flood ----------------------------------------------------------------------------


@dataclass
class Flood:
    """What a viewer flood measured."""

    alive_ms: list[float] = field(default_factory=list)
    ready_failures: int = 0
    ready_checks: int = 0
    answers: dict[str, dict[int, int]] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.alive_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    def count(self, kind: str, status: int) -> None:
        by_status = self.answers.setdefault(kind, {})
        by_status[status] = by_status.get(status, 0) + 1


async def _get(port: int, path: str, key: str | None = None) -> tuple[int, float]:
    """One GET on a fresh connection, its body read and dropped: (status, seconds)."""
    started = time.perf_counter()
    # A reader buffer that holds a whole diff: the client must not be what is slow.
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=64 * MIB)
    try:
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        at = head.find(b"content-length:")
        if at >= 0:
            await reader.readexactly(int(head[at + 15 : head.index(b"\r\n", at)]))
        return int(head.split(b" ", 2)[1]), time.perf_counter() - started
    finally:
        writer.close()


def _viewer_path(closing: str, incidences: int) -> tuple[str, str]:
    """A heavy read, as a viewer clicking around would make: (kind, path)."""
    base = f"{API}/closings/{closing}"
    roll = random.random()
    if roll < 0.25:
        first, second = random.sample((1, 2), 2)
        return "diff", f"{base}/diff?from={first}&to={second}"
    if roll < 0.35:  # with its stored diff
        return "iteration", f"{base}/iterations/{random.choice((1, 2))}"
    if roll < 0.85:
        severity = random.choice(("", "&severity=error", "&severity=warning"))
        kind = random.choice(("", "&type=ACCOUNT_NOT_IN_CHART"))
        offset = random.randrange(incidences)
        return "view", f"{base}/incidences?limit=20&offset={offset}{severity}{kind}"
    key = f"ACCOUNT_NOT_IN_CHART:{700000 + random.randrange(incidences)}"
    return "drill-down", f"{base}/incidences/{key}/movements?limit=1000"


async def viewer_flood(
    port: int, key: str, closing: str, incidences: int, seconds: float, viewers: int
) -> Flood:
    """`viewers` clients reading diffs, views and drill-downs back to back for `seconds`, while
    /alive is timed every 50 ms and /ready checked every second."""
    flood = Flood()
    deadline = time.monotonic() + seconds

    async def viewer() -> None:
        while time.monotonic() < deadline:
            kind, path = _viewer_path(closing, incidences)
            try:
                status, _ = await _get(port, path, key)
            except (OSError, asyncio.IncompleteReadError):
                status = 0
            flood.count(kind, status)

    async def prober() -> None:
        next_ready = 0.0
        while time.monotonic() < deadline:
            _, elapsed = await _get(port, "/alive")
            flood.alive_ms.append(elapsed * 1000)
            if time.monotonic() >= next_ready:
                next_ready = time.monotonic() + 1
                flood.ready_checks += 1
                flood.ready_failures += (await _get(port, "/ready"))[0] != 200
            await asyncio.sleep(0.05)

    await asyncio.gather(prober(), *(viewer() for _ in range(viewers)))
    return flood


# --- a lease stolen mid-parse --------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseSteal:
    location: str  # the iteration's URL
    batches_at_steal: int
    batches_after: int
    parsed: bool
    stop_seconds: float  # from the steal to the worker's log line saying it gave up


async def steal_lease_mid_parse(
    base: str, key: str, dsn: str, worker_log: Path, rows: int
) -> LeaseSteal:
    """Upload a ledger, and once its first batch is stored take the iteration over as another
    worker would (attempt + 1, renewing its lease); watch the worker stop and write nothing
    more. The thief then lets its lease lapse, so the sweeper has the iteration run again."""
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300
    ) as http:
        client = (await http.post(f"{API}/clients", json={"name": "Stolen"})).json()["id"]
        made = await http.post(f"{API}/clients/{client}/closings", json={"period": "2026-10"})
        closing = made.raise_for_status().json()["id"]
        files = {"file": ("l.csv", ledger(rows, "1.00", 2_000))}
        accepted = await http.post(f"{API}/closings/{closing}/ledger", files=files)
        location = accepted.raise_for_status().headers["Location"]
    conn = await asyncpg.connect(dsn)
    try:
        ledger_id = await conn.fetchval("SELECT ledger_id FROM closings WHERE id = $1", closing)
        count = "SELECT count(*) FROM movement_batches WHERE ledger_id = $1"
        deadline = time.monotonic() + 300
        while await conn.fetchval(count, ledger_id) < 1:
            assert time.monotonic() < deadline, "the worker never stored a batch"
            await asyncio.sleep(0.05)
        stolen = await conn.fetchrow(
            "UPDATE iterations SET attempts = attempts + 1, heartbeat_at = now() "
            "WHERE closing_id = $1 AND status = 'running' "
            "RETURNING id, attempts, clock_timestamp() AS at",
            closing,
        )
        at_steal = await conn.fetchval(count, ledger_id)
        renewing = asyncio.create_task(_hold_lease(dsn, stolen["id"], stolen["attempts"]))
        try:
            stop_seconds = await _given_up_after(worker_log, stolen["at"].timestamp())
            await asyncio.sleep(5)  # time for any write a running job would still make
            after = await conn.fetchval(count, ledger_id)
        finally:
            renewing.cancel()
        parsed = await conn.fetchval("SELECT parsed_at FROM ledgers WHERE id = $1", ledger_id)
        await conn.execute(  # the thief "dies": its lease lapses at once
            "UPDATE iterations SET heartbeat_at = to_timestamp(0) WHERE id = $1", stolen["id"]
        )
    finally:
        await conn.close()
    return LeaseSteal(location, at_steal, after, parsed is not None, stop_seconds)


async def _hold_lease(dsn: str, iteration: Any, attempt: int) -> None:
    """Renew the thief's lease, as a live worker would."""
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            await conn.execute(
                "UPDATE iterations SET heartbeat_at = now() WHERE id = $1 AND attempts = $2",
                iteration,
                attempt,
            )
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def _given_up_after(worker_log: Path, stolen_at: float, timeout: float = 60) -> float:
    """Seconds from the steal to the worker's log line about the lost lease."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(worker_log.read_text, errors="replace")
        for line in text.splitlines():
            if "its lease was lost" in line:
                logged = datetime.fromisoformat(orjson.loads(line)["time"])
                return logged.timestamp() - stolen_at
        await asyncio.sleep(0.1)
    raise TimeoutError("the worker never said it lost its lease")


# --- the script ----------------------------------------------------------------------------------


# The API the lease is stolen through: its uploads are parsed by their runs.
STEAL_SETTINGS = {"PARSE_WHILE_UPLOADING": "false"}
SERVICE_SETTINGS = {
    # One API process: the one whose memory is measured (by its pid).
    "WEB_CONCURRENCY": "1",
    # The limiter runs on every request but never refuses: the figures are the service's own.
    "RATE_LIMIT_READ": "1000000/60",
    "RATE_LIMIT_WRITE": "1000000/60",
    "RATE_LIMIT_UPLOAD": "1000000/60",
    "RATE_LIMIT_ANON": "1000000/60",
    "MAX_UPLOAD_BYTES": str(64 * MIB),
    "ITERATION_LEASE_SECONDS": "3",
    "LOG_LEVEL": "INFO",
}


def _print_figures(refusals: list[Refusal], flood: Flood, steal: LeaseSteal) -> None:
    print(f"\nrefused requests (API peak RSS growth, limit {MAX_REFUSED_GROWTH_MIB} MiB):")
    for r in refusals:
        ok = "ok" if r.status == r.expect else f"EXPECTED {r.expect}"
        print(f"  {r.name:<40} {r.status} {ok:<12} +{r.growth_mib:5.1f} MiB  {r.seconds:5.2f} s")
    print(
        f"\nviewer flood: /alive p50 {flood.percentile(0.5):.1f} ms, p99 "
        f"{flood.percentile(0.99):.1f} ms, max {max(flood.alive_ms):.1f} ms over "
        f"{len(flood.alive_ms)} probes (p99 limit {MAX_ALIVE_P99_MS} ms); /ready failed "
        f"{flood.ready_failures} of {flood.ready_checks}"
    )
    for kind, statuses in sorted(flood.answers.items()):
        print(f"  {kind:<11} answers by status: {dict(sorted(statuses.items()))}")
    print(
        f"\nlease stolen mid-parse: worker gave up {steal.stop_seconds:.2f} s after the steal; "
        f"batches {steal.batches_at_steal} at the steal, {steal.batches_after} 5 s later; "
        f"parse recorded: {steal.parsed}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidences", type=int, default=40_000)
    parser.add_argument("--flood-seconds", type=float, default=20.0)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--steal-rows", type=int, default=1_000_000)
    args = parser.parse_args()

    run = secrets.token_hex(3)
    with ExitStack() as stack:
        bench = bench_stack(stack, "hostile", run)
        key = "li_bench_" + secrets.token_urlsafe(24)
        port = free_port()
        env = bench.service_env(key, port, **SERVICE_SETTINGS)
        subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True)
        worker_log = bench.tmp / "worker.log"
        with worker_log.open("wb") as log:
            api = subprocess.Popen([*CLI, "serve"], env=env, stderr=subprocess.DEVNULL)
            worker = subprocess.Popen([*CLI, "worker"], env=env, stderr=log)
        stack.callback(stop, [api, worker])
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        ids = setup(base, key, args.incidences)
        print(f"API pid {api.pid}: RSS {status_kib(api.pid, 'VmRSS') / 1024:.0f} MiB after setup")
        refusals = refuse_bodies(port, api.pid, key, ids)
        flood = asyncio.run(
            viewer_flood(
                port, key, ids["closing"], args.incidences, args.flood_seconds, args.viewers
            )
        )
        dsn = admin_dsn(bench.database_url)
        # An upload parsed while it arrives leaves no parse to its run: this one is not.
        steal_port = free_port()
        steal_env = bench.service_env(key, steal_port, **SERVICE_SETTINGS, **STEAL_SETTINGS)
        steal_api = subprocess.Popen([*CLI, "serve"], env=steal_env, stderr=subprocess.DEVNULL)
        stack.callback(stop, [steal_api])
        steal_base = f"http://127.0.0.1:{steal_port}"
        wait_ready(steal_base)
        steal = asyncio.run(
            steal_lease_mid_parse(steal_base, key, dsn, worker_log, args.steal_rows)
        )
        # Imported here: the ledger-file cases are built with this module's helpers.
        from bench.hostile_files import print_ledger_files, run_ledger_files

        files = run_ledger_files(base, key, ids["client"], api.pid, worker.pid)
        _print_figures(refusals, flood, steal)
        print_ledger_files(files)
        ready = httpx.get(f"{base}/ready", timeout=5).status_code
        print(f"\nafter all: /ready {ready}, API RSS {status_kib(api.pid, 'VmRSS') / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
