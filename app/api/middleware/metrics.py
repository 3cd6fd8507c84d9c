"""HTTP request count and latency by method, route template and status class (pure ASGI).

Labels never carry raw paths: the route template ("/api/v1/closings/{closing_id}") is taken
from the routing table, "unmatched" when no route fits, and unknown methods count as "OTHER",
so the number of series is bounded by the number of routes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from fastapi.routing import iter_route_contexts
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.middleware.request_id import ROUTE_TEMPLATE_KEY
from app.metrics import HTTP_LATENCY, HTTP_REQUESTS

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class _Template:
    regex: re.Pattern[str]
    template: str


def route_templates(app: object) -> list[_Template]:
    """Every route of the application with its full path template (prefixes included)."""
    templates = []
    for context in iter_route_contexts(getattr(app, "routes", [])):
        regex, template = getattr(context, "path_regex", None), context.path_format
        if regex is not None and template:
            templates.append(_Template(regex, template))
    return templates


def route_template(scope: Scope, templates: list[_Template]) -> str:
    """The template of the route that matches the request path, or "unmatched"."""
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    for candidate in templates:
        if candidate.regex.match(path):
            return candidate.template
    return UNMATCHED


def status_class(status: int) -> str:
    """2xx, 4xx…: the status label."""
    return f"{status // 100}xx"


class MetricsMiddleware:
    """Count and time every HTTP request by route template and status class."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: list[_Template] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the application raises before answering

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            route = self._template(scope)
            scope[ROUTE_TEMPLATE_KEY] = route
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            HTTP_REQUESTS.labels(method, route, status_class(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)

    def _template(self, scope: Scope) -> str:
        if self._templates is None:
            # Built on first use: the routing table is complete once the app serves.
            self._templates = route_templates(scope.get("app"))
        return route_template(scope, self._templates)
