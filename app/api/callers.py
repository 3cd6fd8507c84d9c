"""Who is calling, cheaply: the bearer token, recently checked API keys, the client's IP."""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import uuid
from collections.abc import Awaitable, Callable, Sequence

from cachetools import TLRUCache, TTLCache
from starlette.types import Scope

from app.services.tenancy.api_keys import Principal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Unknown(enum.Enum):
    """The key's validity is not known (not cached, or it could not be checked)."""

    UNKNOWN = 0


UNKNOWN = Unknown.UNKNOWN
KeyState = uuid.UUID | None | Unknown  # a live key's id, None for an invalid key, or UNKNOWN


def bearer_token(scope: Scope) -> str | None:
    """The token of `Authorization: Bearer <token>`, or None."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


class PrincipalCache:
    """Key hash → principal for `ttl` seconds, so a hot read path does no Postgres query.

    Only valid keys are cached (made-up keys cannot fill it), and an entry is dropped after
    `ttl`: a key revoked in Postgres stops working within AUTH_CACHE_TTL_SECONDS (default 5).
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self._entries: TTLCache[bytes, Principal] = TTLCache(max_entries, ttl=max(ttl, 1e-9))

    def get(self, digest: bytes) -> Principal | None:
        """The cached principal of a key hash, unless expired."""
        return self._entries.get(digest)

    def put(self, digest: bytes, principal: Principal) -> None:
        """Remember a key just authenticated against Postgres."""
        if self.ttl > 0:
            self._entries[digest] = principal


class KnownKeys:
    """Recently checked API keys by sha256: the key's id if live, None if invalid.

    Only chooses the rate-limit subject; every request is still authenticated by the route.
    The auth dependency refreshes an entry on each check, so a revoked key stops counting as a
    key at its next request in this process; elsewhere within `valid_ttl`.
    """

    def __init__(
        self,
        *,
        valid_ttl: float = 300.0,
        invalid_ttl: float = 60.0,
        max_entries: int = 10_000,
        max_lookups: int = 8,
        lookup_timeout: float = 1.0,
    ) -> None:
        ttl = {True: valid_ttl, False: invalid_ttl}
        self._max_lookups = max_lookups
        self._lookup_timeout = lookup_timeout
        self._entries: TLRUCache[bytes, uuid.UUID | None] = TLRUCache(
            max_entries, ttu=lambda _, key_id, now: now + ttl[key_id is not None]
        )
        self._pending: dict[bytes, asyncio.Task[uuid.UUID | None]] = {}

    def get(self, digest: bytes) -> KeyState:
        """The cached state of a key, or UNKNOWN."""
        return self._entries.get(digest, UNKNOWN)

    def remember(self, digest: bytes, key_id: uuid.UUID | None) -> None:
        """Record the outcome of an authentication (None: the key is invalid or revoked)."""
        self._entries[digest] = key_id

    async def resolve(
        self, digest: bytes, check: Callable[[], Awaitable[uuid.UUID | None]]
    ) -> KeyState:
        """The cached state, else `check()` once for all concurrent callers with this key.

        At most `max_lookups` distinct keys are checked at a time: past that (a flood of made-up
        keys) a request is simply counted as anonymous, so the database is never swamped.
        """
        state = self.get(digest)
        if state is not UNKNOWN:
            return state
        task = self._pending.get(digest)
        if task is None:
            if len(self._pending) >= self._max_lookups:
                return UNKNOWN
            # A task of its own: a cancelled request must not cancel the others' lookup.
            task = asyncio.create_task(self._lookup(digest, check))
            self._pending[digest] = task
            task.add_done_callback(lambda done: self._finished(digest, done))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._lookup_timeout)
        except Exception:  # the lookup failed or is slow: the database will say so elsewhere
            return UNKNOWN

    def _finished(self, digest: bytes, task: asyncio.Task[uuid.UUID | None]) -> None:
        self._pending.pop(digest, None)
        if not task.cancelled():
            task.exception()  # retrieved here, as waiters that timed out never see it

    async def _lookup(
        self, digest: bytes, check: Callable[[], Awaitable[uuid.UUID | None]]
    ) -> uuid.UUID | None:
        key_id = await check()
        self.remember(digest, key_id)
        return key_id


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address | None, networks: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in networks)


def client_ip(scope: Scope, trusted: Sequence[Network]) -> str:
    """The client's IP: the peer's, or, when the peer is a trusted proxy, the nearest
    X-Forwarded-For hop that is not itself a trusted proxy (hops further left are whatever the
    client chose to send, so they are never believed)."""
    peer = scope.get("client")
    host = peer[0] if peer else "unknown"
    if not trusted or not _trusted(_address(host), trusted):
        return host
    hops = [
        hop
        for name, value in scope["headers"]
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
    ]
    nearest: Address | None = None
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # a malformed chain: trust no hop beyond it
        nearest = address
        if not _trusted(address, trusted):
            return str(address)
    return str(nearest) if nearest is not None else host
