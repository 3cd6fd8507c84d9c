"""The limiter's view of the caller: client IP behind trusted proxies, the known-keys cache."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid

import pytest

from app.api.callers import UNKNOWN, KnownKeys, bearer_token, client_ip
from app.api.middleware.rate_limit import policy_name

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


def scope(peer: str | None, *forwarded: str, authorization: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    return {"client": (peer, 1234) if peer else None, "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),  # untrusted peer: its header is ignored
        ("10.0.0.1", [], "10.0.0.1"),  # a trusted proxy that forwarded nothing
        ("10.0.0.1", ["1.2.3.4"], "1.2.3.4"),
        ("10.0.0.1", ["6.6.6.6, 1.2.3.4, 10.0.0.7"], "1.2.3.4"),  # nearest untrusted hop
        ("10.0.0.1", ["6.6.6.6", "1.2.3.4"], "1.2.3.4"),  # several header lines, in order
        ("10.0.0.1", ["1.2.3.4, bogus, 10.0.0.7"], "10.0.0.7"),  # broken chain: stop there
        ("10.0.0.1", ["10.0.0.8, 10.0.0.7"], "10.0.0.8"),  # all proxies: the farthest
        ("::ffff:10.0.0.1", ["1.2.3.4"], "1.2.3.4"),  # IPv4-mapped peer
        ("fd00::1", ["2001:db8::5"], "2001:db8::5"),
        (None, ["1.2.3.4"], "unknown"),
    ],
)
def test_client_ip(peer: str | None, forwarded: list[str], expected: str) -> None:
    assert client_ip(scope(peer, *forwarded), PROXIES) == expected


def test_client_ip_ignores_x_forwarded_for_without_trusted_proxies() -> None:
    assert client_ip(scope("10.0.0.1", "1.2.3.4"), ()) == "10.0.0.1"


def test_bearer_token() -> None:
    assert bearer_token(scope("1.1.1.1", authorization="Bearer li_abc")) == "li_abc"
    assert bearer_token(scope("1.1.1.1", authorization="bearer  li_abc ")) == "li_abc"
    assert bearer_token(scope("1.1.1.1", authorization="Basic li_abc")) is None
    assert bearer_token(scope("1.1.1.1", authorization="Bearer ")) is None
    assert bearer_token(scope("1.1.1.1")) is None


def test_policy_name() -> None:
    assert policy_name("GET", "/api/v1/clients") == "read"
    assert policy_name("HEAD", "/api/v1/clients") == "read"
    assert policy_name("POST", "/api/v1/closings/x/ledger") == "upload"
    assert policy_name("POST", "/api/v1/clients") == "write"
    assert policy_name("PATCH", "/api/v1/closings/x") == "write"


def test_known_keys_expire_and_stay_bounded() -> None:
    keys = KnownKeys(valid_ttl=60, invalid_ttl=0, max_entries=2)
    first, second = uuid.uuid4(), uuid.uuid4()
    keys.remember(b"a", first)
    keys.remember(b"b", None)  # invalid, and already expired (ttl 0)
    assert keys.get(b"a") == first and keys.get(b"b") is UNKNOWN
    keys.remember(b"c", second)
    keys.remember(b"d", second)
    assert keys.get(b"a") is UNKNOWN  # evicted, least recently used first
    assert keys.get(b"d") == second


async def test_known_keys_look_a_key_up_once_for_concurrent_callers() -> None:
    keys = KnownKeys()
    calls = 0
    key_id = uuid.uuid4()

    async def check() -> uuid.UUID | None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return key_id

    results = await asyncio.gather(*(keys.resolve(b"k", check) for _ in range(50)))
    assert results == [key_id] * 50 and calls == 1
    assert await keys.resolve(b"k", check) == key_id and calls == 1  # now cached


async def test_known_keys_bound_lookups_and_forget_failures() -> None:
    keys = KnownKeys(max_lookups=1, lookup_timeout=0.05)
    release = asyncio.Event()

    async def slow() -> uuid.UUID | None:
        await release.wait()
        return None

    async def broken() -> uuid.UUID | None:
        raise OSError("database down")

    first = asyncio.create_task(keys.resolve(b"slow", slow))
    await asyncio.sleep(0)
    # One lookup is running: a second made-up key is counted as unknown at once.
    assert await keys.resolve(b"other", slow) is UNKNOWN
    assert await first is UNKNOWN  # the slow lookup timed out for its caller …
    release.set()
    await asyncio.sleep(0.01)
    assert keys.get(b"slow") is None  # … and still recorded its answer
    assert await keys.resolve(b"broken", broken) is UNKNOWN
    assert keys.get(b"broken") is UNKNOWN  # a failed lookup is not cached
