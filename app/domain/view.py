"""Filtered and paged views of a snapshot document (GET /incidences with `type`, `severity`,
`limit`, `offset`): the query, its cache name and validator, and the view itself."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class SnapshotQuery:
    """Filters and paging of a snapshot read; the default is the whole snapshot."""

    type: str | None = None
    severity: str | None = None
    limit: int | None = None
    offset: int = 0

    def is_whole(self) -> bool:
        """True when the query asks for the snapshot as it is."""
        return self == WHOLE

    def view_id(self) -> str:
        """Cache name of the view ("" for the whole snapshot)."""
        return "" if self.is_whole() else hashlib.sha256(repr(self).encode()).hexdigest()[:16]

    def etag(self, content_hash: str) -> str:
        """The snapshot hash, varied by the query so each view has its own validator."""
        view = self.view_id()
        return f'"{content_hash}.{view}"' if view else f'"{content_hash}"'


WHOLE = SnapshotQuery()


def snapshot_view(document: bytes, query: SnapshotQuery) -> bytes:
    """The snapshot document with its incidences filtered and paged (bytes in, bytes out)."""
    if query.is_whole():
        return document
    snapshot = orjson.loads(document)
    selected = [
        incidence
        for incidence in snapshot["incidences"]
        if (query.type is None or incidence["type"] == query.type)
        and (query.severity is None or incidence["severity"] == query.severity)
    ]
    end = None if query.limit is None else query.offset + query.limit
    snapshot["incidences"] = selected[query.offset : end]
    snapshot["page"] = {"total": len(selected), "offset": query.offset, "limit": query.limit}
    return orjson.dumps(snapshot)
