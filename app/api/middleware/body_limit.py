"""Every request body is bounded (SPEC §6), as a pure ASGI middleware in front of the routes.

FastAPI reads and parses a JSON body before any dependency runs, the API-key check included,
so the bound must hold before the application sees the request: a body declared larger than
its limit is refused with 413 without reading a byte of it, and a body that turns out larger
while it streams in (chunked, or a lying Content-Length) is refused as soon as the limit is
crossed. Whoever sends it: the key is not looked at. A body sent without an API key (or with a
key this process already knows to be invalid) is refused with 401 before it is read at all.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.callers import bearer_token
from app.api.problems import problem
from app.api.state import app_state
from app.services.tenancy.api_keys import hash_key
from app.settings import Settings

MIB = 1024 * 1024
ORDINARY_BODY_BYTES = 1 * MIB
# Bulk reference data (a whole chart of accounts) is larger, and still held in memory whole.
BULK_BODY_BYTES = 16 * MIB

_BULK = re.compile(r"/api/v1/clients/[^/]+/(?:accounts|document-types)")
_UPLOAD = re.compile(r"/api/v1/closings/[^/]+/ledger")


def body_limit(method: str, path: str, max_upload_bytes: int) -> tuple[int, str]:
    """The largest body a request may carry, and how to name that limit to its sender."""
    if method == "PUT" and _BULK.fullmatch(path):
        return BULK_BODY_BYTES, "16 MiB, the limit of a reference-data upload"
    if method == "POST" and _UPLOAD.fullmatch(path):
        return max_upload_bytes, "MAX_UPLOAD_BYTES"
    return ORDINARY_BODY_BYTES, "1 MiB, the limit of a request body"


class BodyTooLarge(HTTPException):
    """Raised into the application when the streamed body crosses its limit."""

    def __init__(self, limit: int, name: str) -> None:
        super().__init__(413, f"The body is larger than {limit} bytes ({name})")


def _declared(scope: Scope) -> tuple[int | None, bool]:
    """(Content-Length, whether a body may follow at all)."""
    length: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked or bool(length)


class BodyLimitMiddleware:
    """413 for bodies over their route's limit, 401 for bodies sent without a key."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.max_upload_bytes = settings.max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, has_body = _declared(scope)
        if not has_body:
            await self.app(scope, receive, send)
            return
        limit, name = body_limit(scope["method"], scope["path"], self.max_upload_bytes)
        if declared is not None and declared > limit:
            await _refuse(BodyTooLarge(limit, name), scope, receive, send)
            return
        unauthenticated = _unauthenticated(scope)
        if unauthenticated is not None:
            await _refuse(unauthenticated, scope, receive, send)
            return
        await self._counted(scope, receive, send, limit, name)

    async def _counted(
        self, scope: Scope, receive: Receive, send: Send, limit: int, name: str
    ) -> None:
        """Run the app, counting the body's bytes as they arrive; past `limit` the app gets
        BodyTooLarge from `receive`, and whatever it answers is replaced by the 413."""
        received = 0
        refused: BodyTooLarge | None = None
        started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = BodyTooLarge(limit, name)
                    raise refused
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None:
                return  # the app's answer to a body it could not finish reading: ours follows
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if refused is None:
                raise
        if refused is not None and not started:
            await _refuse(refused, scope, receive, send)


def _unauthenticated(scope: Scope) -> HTTPException | None:
    """401 for an API body without a key, or with a key known to be invalid; None otherwise
    (a key not checked yet is left to the route, which checks it)."""
    if not scope["path"].startswith("/api/"):
        return None
    token = bearer_token(scope)
    if token is None:
        return HTTPException(401, "Missing API key: send `Authorization: Bearer <key>`")
    if app_state(scope["app"]).known_keys.get(hash_key(token)) is None:
        return HTTPException(401, "Invalid or revoked API key")
    return None


async def _refuse(error: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer without reading the body; the connection is closed after the answer, so the rest
    of the body is never read either."""
    headers = {"Connection": "close"}
    if error.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    slug = "payload-too-large" if error.status_code == 413 else None
    response = problem(error.status_code, error.detail, type_slug=slug, headers=headers)
    await response(scope, receive, send)
