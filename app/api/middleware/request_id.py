"""X-Request-ID: accepted when well-formed, generated otherwise, echoed, logged (pure ASGI)."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logging import request_id_var

logger = logging.getLogger("app.access")

HEADER = b"x-request-id"
# Set in the scope by the metrics middleware once the request was routed.
ROUTE_TEMPLATE_KEY = "ledger.route_template"
# Probes and scrapes arrive every few seconds: their access lines are DEBUG, not INFO.
QUIET_PATHS = frozenset({"/alive", "/ready", "/health", "/metrics"})
# Tracing ids of every common shape (UUID, ULID, hex, W3C trace id, "svc-123:abc") fit; anything
# else (too long, spaces, control or non-ASCII characters) is replaced so logs stay clean.
WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")


def accepted_id(raw: bytes | None) -> str:
    """The client's id when well-formed, else a fresh one."""
    if raw is not None:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if WELL_FORMED.fullmatch(text):
            return text
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Give each request an id (state, log context, response header); log one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((value for name, value in scope["headers"] if name == HEADER), None)
        request_id = accepted_id(raw)
        scope.setdefault("state", {})["request_id"] = request_id  # request.state.request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                headers.append((HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logger.log(
                logging.DEBUG if scope["path"] in QUIET_PATHS else logging.INFO,
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": scope.get(ROUTE_TEMPLATE_KEY),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)
