"""JSON log lines on stderr, one object per line; secrets never reach a log call."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# The id of the HTTP request (or of the request that queued the job) being handled: set by the
# request-id middleware in the API and by the worker when it claims an iteration, so every log
# line written on its behalf carries it without passing it around.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object, with any `extra=` fields alongside."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
        if extra.get("request_id", "") is None:
            extra.pop("request_id")  # an explicit None never hides the context's id
        entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "pgserver", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
