"""Fast lane of GET /api/v1/closings/{id}/incidences (pure ASGI, inside the rate limiter).

The hot read needs nothing FastAPI's routing and dependency resolution would compute: when the
caller's key is in the auth cache and the snapshot's near-cache entry is fresh, the answer is a
ready body. Routing and dependencies cost more than the rest of such a request, so this lane
answers it directly, byte for byte as the route would. Anything else (unknown key, odd query,
cold or unconfirmed entry, errors) goes on to the route, which is the reference behaviour.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.routes.incidences import MAX_OFFSET, none_match, snapshot_headers
from app.services.snapshot_cache.queries import SnapshotQuery
from app.services.snapshot_cache.repository import view_id
from app.services.tenancy.api_keys import Role, hash_key

PATH = re.compile(r"/api/v1/closings/([0-9A-Fa-f-]{32,36})/incidences")
_SEVERITIES = frozenset({"error", "warning"})
MAX_LIMIT = 10_000  # as the route's Query(le=…)
_WHOLE = SnapshotQuery()
_JSON = (b"content-type", b"application/json")


def parse_query(query_string: bytes) -> SnapshotQuery | None:
    """The route's filters when the query is one it accepts as-is; None to let the route decide."""
    if not query_string:
        return _WHOLE
    try:
        pairs = parse_qsl(
            query_string.decode("ascii"), keep_blank_values=True, strict_parsing=False
        )
    except UnicodeDecodeError:
        return None
    values = dict(pairs)
    if len(values) != len(pairs) or not values.keys() <= {"type", "severity", "limit", "offset"}:
        return None
    if any(not value for value in values.values()):
        return None
    severity = values.get("severity")
    limit, offset = values.get("limit"), values.get("offset", "0")
    if severity is not None and severity not in _SEVERITIES:
        return None
    if not _digits(offset) or (limit is not None and not _digits(limit)):
        return None
    if limit is not None and not 1 <= int(limit) <= MAX_LIMIT:
        return None
    if int(offset) > MAX_OFFSET:
        return None
    return SnapshotQuery(
        type=values.get("type"),
        severity=severity,
        limit=int(limit) if limit is not None else None,
        offset=int(offset),
    )


def _digits(text: str) -> bool:
    # ASCII only: str.isdigit() is also true of "²", which int() refuses.
    return text.isascii() and text.isdigit()


def _header(scope: Scope, name: bytes) -> str | None:
    found = [value for key, value in scope["headers"] if key == name]
    return found[0].decode("latin-1") if len(found) == 1 else None


class SnapshotReadFastPath:
    """Answer fresh, authenticated snapshot reads without routing; pass everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # ETag → encoded headers of a 304; small and bounded (cleared when full).
        self._headers: dict[str, list[tuple[bytes, bytes]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = (
            self._answer(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        )
        if answer is None:
            await self.app(scope, receive, send)
            return
        status, headers, body = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """(status, headers, body) when this lane can answer at once (no I/O), else None."""
        matched = PATH.fullmatch(scope["path"])
        state = scope["app"].state
        cache = getattr(state, "principal_cache", None)
        repository = getattr(state, "snapshots", None)
        authorization = _header(scope, b"authorization")
        if matched is None or cache is None or repository is None or authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        principal = cache.get(hash_key(token))
        query = parse_query(scope["query_string"])
        if principal is None or principal.role < Role.viewer or query is None:
            return None
        try:
            closing = uuid.UUID(matched.group(1))
        except ValueError:
            return None
        served = repository.fresh(principal.tenant_id, closing, view_id(query))
        if served is None:
            return None
        scope.setdefault("state", {})["principal"] = principal
        etag = query.etag(served.content_hash)
        headers = self._headers.get(etag)
        if headers is None:
            if len(self._headers) >= 1024:
                self._headers.clear()
            headers = self._headers[etag] = [
                (k.lower().encode(), v.encode()) for k, v in snapshot_headers(etag, "hit").items()
            ]
        if_none_match = _header(scope, b"if-none-match")
        if if_none_match is not None and none_match(if_none_match, etag):
            return 304, list(headers), b""
        length = (b"content-length", str(len(served.body)).encode())
        return 200, [*headers, length, _JSON], served.body
