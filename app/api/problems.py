"""RFC 9457 problem details: every error the API answers goes through here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from app.api.schemas.problems import Problem
from app.domain import errors as domain

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

# Domain errors → (HTTP status, problem type slug). One table, so no route maps errors itself.
_DOMAIN_STATUS: dict[type[domain.DomainError], tuple[int, str]] = {
    domain.UnsupportedLedgerFile: (415, "unsupported-ledger-file"),
    domain.LedgerFormatError: (422, "ledger-missing-columns"),
    domain.EmptyLedger: (422, "ledger-without-movements"),
    domain.InvalidLedgerOptions: (422, "invalid-ledger-options"),
    domain.MalformedLedger: (422, "malformed-ledger"),
    domain.NotFound: (404, "not-found"),
    domain.CloseBlocked: (409, "close-blocked"),  # before Conflict: the first match wins
    domain.Conflict: (409, "conflict"),
    domain.InvalidInput: (422, "invalid-input"),
    domain.PayloadTooLarge: (413, "payload-too-large"),
    domain.Busy: (503, "busy"),
}
# Seconds a client is told to wait before retrying a request refused as Busy.
BUSY_RETRY_AFTER_SECONDS = 2


class ProblemResponse(Response):
    """A problem+json body."""

    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(
    status: int,
    detail: str,
    *,
    type_slug: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """Build a problem response; `type` is about:blank unless a specific slug is given."""
    body: dict[str, Any] = {
        "type": f"/problems/{type_slug}" if type_slug else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]


def _extra_members(exc: domain.DomainError) -> dict[str, Any]:
    """Machine-readable members some errors carry besides their detail."""
    if isinstance(exc, domain.LedgerFormatError):
        return {
            "missing_fields": exc.missing_fields,
            "header_found": exc.header_found[: exc.MAX_SHOWN],  # the first ones only
            "header_columns": len(exc.header_found),
        }
    if isinstance(exc, domain.CloseBlocked):
        return {"unreviewed_keys": exc.keys[: exc.MAX_SHOWN], "unreviewed_count": len(exc.keys)}
    return {}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route fully matches on this path, for the Allow header of a 405
    (RFC 9110 §15.5.6); Starlette's own header names only the first matching route's methods."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def install_problem_handlers(app: FastAPI) -> None:
    """Map every exception the app can raise to problem+json."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No resource at {request.url.path}"
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
            # FastAPI's own words are "There was an error parsing the body": say which error.
            detail = f"The body is not UTF-8 JSON: {cause.reason} at byte {cause.start}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
            allowed = _allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return problem(exc.status_code, detail, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"]) or "request"
        return problem(422, f"{where}: {first['msg']}", type_slug="validation", errors=errors)

    @app.exception_handler(domain.DomainError)
    async def _domain(request: Request, exc: domain.DomainError) -> Response:
        status, slug = next(
            (value for cls, value in _DOMAIN_STATUS.items() if isinstance(exc, cls)),
            (400, "bad-request"),
        )
        headers = {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)} if status == 503 else None
        return problem(status, exc.detail, type_slug=slug, headers=headers, **_extra_members(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Logged with its traceback for operators; the client never sees internals.
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "The server failed to handle this request; it has been logged.")


# --- the OpenAPI side: which problems an operation can answer ----------------------------------

_WHY = {
    400: "The body cannot be parsed: JSON that is not UTF-8, or a malformed multipart body",
    401: "No API key, or an invalid or revoked one",
    403: "The API key's role is too low for this operation",
    404: "Not found (another tenant's resources are not found either)",
    409: "The request conflicts with the resource's state",
    413: "The body is over its limit: 1 MiB (16 MiB for bulk reference data, MAX_UPLOAD_BYTES "
    "for a ledger upload), refused before it is read whole",
    415: "The body's media type is not accepted",
    422: "The request is invalid; validation failures are listed in `errors`",
    429: "Rate limit exceeded",
    503: "Postgres or Redis is unavailable, or the server is busy: retry later",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "required": True,
            "description": "Seconds until one more request is allowed",
            "schema": {"type": "integer"},
        },
        **{
            name: {"required": True, "schema": {"type": "integer"}}
            for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
        },
    },
}


def problem_responses(*statuses: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for problem+json answers: a status, or (status, why) to say more."""
    responses: dict[int | str, dict[str, Any]] = {}
    for item in statuses:
        status, why = item if isinstance(item, tuple) else (item, _WHY[item])
        response: dict[str, Any] = {
            "description": why,
            "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}},
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        responses[status] = response
    return responses


def install_problem_openapi(app: FastAPI) -> None:
    """Document problem+json in the OpenAPI document: register the Problem schema, and make
    the 422 FastAPI adds to every operation with parameters a problem (its default describes
    a body this API never sends)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components.update(schema.pop("$defs", {}), Problem=schema)
        validation = problem_responses(422)[422]
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                default = operation.get("responses", {}).get("422", {})
                if "application/json" in default.get("content", {}):
                    operation["responses"]["422"] = validation
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
