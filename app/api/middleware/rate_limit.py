"""Sliding-window rate limits (SPEC §7) as a pure ASGI middleware: one Redis round trip per
request, per API key or, without a valid key, per client IP; fails open when Redis is down."""

from __future__ import annotations

import ipaddress
import logging
import time
import uuid
import weakref
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.adapters.redis import REDIS_FAILURES
from app.adapters.redis.rate_limit import CheckBatcher, Decision, window_check
from app.api.callers import UNKNOWN, KnownKeys, bearer_token, client_ip
from app.api.problems import problem
from app.api.state import app_state
from app.metrics import RATE_LIMIT_FAIL_OPEN, RATE_LIMIT_REJECTIONS
from app.services.tenancy.api_keys import authenticate, hash_key
from app.settings import RatePolicy, Settings

if TYPE_CHECKING:
    from app.resources import Resources

logger = logging.getLogger(__name__)

EXEMPT_PATHS = frozenset({"/alive", "/ready", "/health", "/metrics"})
# The web console's static files, served from memory and cached for good by browsers: counted,
# a first visit would spend a third of the anonymous minute's requests on script files (more
# for an office behind one NAT address); the page and every API call it makes are counted.
EXEMPT_PREFIX = "/ui/assets/"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def policy_name(method: str, path: str) -> str:
    """The policy of an authenticated request: read, upload (a ledger) or write."""
    if method in READ_METHODS:
        return "read"
    if method == "POST" and path.endswith("/ledger"):
        return "upload"
    return "write"


class Breaker:
    """After a Redis failure, skip Redis for `cooldown` seconds, then let one request probe it:
    an outage must not cost every request a connect timeout."""

    def __init__(self, cooldown: float = 2.0) -> None:
        self.cooldown = cooldown
        self._tripped = False
        self._retry_at = 0.0

    def allow(self) -> bool:
        """Whether this request may ask Redis."""
        if not self._tripped:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self._retry_at = now + self.cooldown  # this request is the probe; the others wait
        return True

    def failure(self) -> None:
        """Redis failed: open the circuit."""
        self._tripped = True
        self._retry_at = time.monotonic() + self.cooldown

    def success(self) -> bool:
        """Redis answered; True when that closes a tripped circuit."""
        recovered, self._tripped = self._tripped, False
        return recovered


class FailOpenLog:
    """Counts every request let through unchecked; warns at most once per `interval` seconds,
    with the count since the last warning, so an outage cannot flood the log."""

    def __init__(self, interval: float = 30.0) -> None:
        self.interval = interval
        self._next_at = 0.0
        self._unlogged = 0

    def record(self, reason: str) -> None:
        """One request let through without a check."""
        RATE_LIMIT_FAIL_OPEN.inc()
        self._unlogged += 1
        now = time.monotonic()
        if now >= self._next_at:
            logger.warning(
                "rate limiter failing open (%s): %d request(s) let through unchecked",
                reason,
                self._unlogged,
            )
            self._unlogged = 0
            self._next_at = now + self.interval


class RateLimitMiddleware:
    """Count each request against its policy; refuse with 429 past the limit."""

    def __init__(self, app: ASGIApp, *, settings: Settings, known_keys: KnownKeys) -> None:
        self.app = app
        self.known_keys = known_keys
        self.prefix = settings.redis_key_prefix
        # Parsed here, not read from Settings.trusted_proxy_networks: that cached property
        # survives model_copy(update={"trusted_proxies": ...}) with its old value.
        self.trusted = tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in settings.trusted_proxies.split(",")
            if part.strip()
        )
        self.policies = {
            "read": RatePolicy.parse(settings.rate_limit_read),
            "write": RatePolicy.parse(settings.rate_limit_write),
            "upload": RatePolicy.parse(settings.rate_limit_upload),
            "anon": RatePolicy.parse(settings.rate_limit_anon),
        }
        self.breaker = Breaker()
        self.fail_open = FailOpenLog()
        # One batcher per Redis client (a process has one; tests may build several apps).
        self._batchers: weakref.WeakKeyDictionary[Redis, CheckBatcher] = weakref.WeakKeyDictionary()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        resources = app_state(scope["app"]).resources
        if resources is None:  # outside the lifespan: nothing to count with
            await self.app(scope, receive, send)
            return
        decided = await self._decide(scope, resources)
        if decided is None:
            await self.app(scope, receive, send)
        elif decided[1].admitted:
            await self.app(scope, receive, _with_headers(send, decided[1].headers()))
        else:
            RATE_LIMIT_REJECTIONS.labels(policy=decided[0]).inc()
            await _refuse(scope, receive, send, decided[1])

    async def _decide(self, scope: Scope, resources: Resources) -> tuple[str, Decision] | None:
        """The policy's name and decision, or None when Redis cannot be asked (fail open)."""
        if not self.breaker.allow():
            self.fail_open.record("Redis recently unreachable")
            return None
        name, subject = await self._subject(scope, resources)
        check = window_check(self.prefix, name, self.policies[name], subject)
        try:
            batcher = self._batchers.get(resources.redis)
            if batcher is None:
                batcher = self._batchers[resources.redis] = CheckBatcher(resources.redis)
            decision = await batcher.check(check)
        except REDIS_FAILURES as exc:
            self.breaker.failure()
            # The exception's type only: its text may name the server.
            self.fail_open.record(f"Redis unreachable: {type(exc).__name__}")
            return None
        if self.breaker.success():
            logger.warning("rate limiter: Redis answers again; limits are enforced")
        return name, decision

    async def _subject(self, scope: Scope, resources: Resources) -> tuple[str, str]:
        """(policy name, subject): the key's id for a valid key, else the client's IP."""
        token = bearer_token(scope)
        if token is not None:

            async def check() -> uuid.UUID | None:
                async with resources.reader.connect() as conn:
                    principal = await authenticate(conn, token)
                return principal.key_id if principal is not None else None

            key_id = await self.known_keys.resolve(hash_key(token), check)
            if key_id is not None and key_id is not UNKNOWN:
                return policy_name(scope["method"], scope["path"]), f"key:{key_id.hex}"
        # No key, or not a valid one: failed authentication is limited like anonymous calls.
        return "anon", f"ip:{client_ip(scope, self.trusted)}"


def _exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIX)


async def _refuse(scope: Scope, receive: Receive, send: Send, decision: Decision) -> None:
    """Answer 429 as problem+json, without calling the app."""
    retry_after = max(decision.reset_seconds, 1)
    response = problem(
        429,
        f"Rate limit of {decision.limit} requests exceeded; retry in {retry_after} s",
        type_slug="rate-limited",
        headers={
            "Retry-After": str(retry_after),
            **{name.decode(): value.decode() for name, value in decision.headers()},
        },
    )
    await response(scope, receive, send)


def _with_headers(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    """`send`, adding `headers` to the response's start message."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *headers]}
        await send(message)

    return wrapped
