"""Fast lane of GET /api/v1/closings/{id}/incidences (pure ASGI, inside the rate limiter).

The hot read needs nothing FastAPI's routing and dependency resolution would compute: when the
caller's key is in the auth cache and the snapshot's near-cache entry is fresh, the answer is a
ready body. Routing and dependencies cost more than the rest of such a request, so this lane
answers it directly, through the same view module as the route (app/api/snapshot_view.py).
Anything else (unknown key, odd query, cold or unconfirmed entry, errors) goes on to the route.
"""

from __future__ import annotations

import re
import uuid

from cachetools import LRUCache
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.callers import bearer_token
from app.api.snapshot_view import Headers, answer, parse_fast, snapshot_headers
from app.api.state import app_state
from app.services.tenancy.api_keys import Role, hash_key

PATH = re.compile(r"/api/v1/closings/([0-9A-Fa-f-]{32,36})/incidences")


def _header(scope: Scope, name: bytes) -> str | None:
    found = [value for key, value in scope["headers"] if key == name]
    return found[0].decode("latin-1") if len(found) == 1 else None


class SnapshotReadFastPath:
    """Answer fresh, authenticated snapshot reads without routing; pass everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # (ETag, X-Cache, gzip) → the encoded headers of that answer, ready to send.
        self._headers: LRUCache[tuple[str, str, bool], Headers] = LRUCache(1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answered = (
            self._answer(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        )
        if answered is None:
            await self.app(scope, receive, send)
            return
        status, headers, body = answered
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope: Scope) -> tuple[int, Headers, bytes] | None:
        """(status, headers, body) when this lane can answer at once (no I/O), else None."""
        matched = PATH.fullmatch(scope["path"])
        state = app_state(scope["app"])
        token = bearer_token(scope)
        if matched is None or state.snapshots is None or token is None:
            return None
        principal = state.principals.get(hash_key(token))
        query = parse_fast(scope["query_string"])
        if principal is None or principal.role < Role.viewer or query is None:
            return None
        try:
            closing = uuid.UUID(matched.group(1))
        except ValueError:
            return None
        served = state.snapshots.fresh(principal.tenant_id, closing, query.view_id())
        if served is None:
            return None
        scope.setdefault("state", {})["principal"] = principal
        if_none_match = _header(scope, b"if-none-match")
        return answer(served, query, if_none_match, _header(scope, b"accept-encoding"), self._kept)

    def _kept(self, etag: str, outcome: str, gzip: bool) -> Headers:
        """snapshot_headers, made once per (ETag, X-Cache, encoding)."""
        headers = self._headers.get((etag, outcome, gzip))
        if headers is None:
            headers = self._headers[etag, outcome, gzip] = snapshot_headers(etag, outcome, gzip)
        return headers
