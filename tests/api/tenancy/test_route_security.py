"""Every /api/v1 route, taken from the app's own OpenAPI document, refuses a missing key (401),
a too-low role (403) and another tenant's ids (404): a new route without checks fails here."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from app.api.state import app_state
from app.main import create_app
from app.services.tenancy.api_keys import Role
from app.settings import Settings
from tests.conftest import KeyMaker, bearer
from tests.helpers import API, assert_problem, create_closing, get_json, upload

# The role SPEC §6 gives each operation. A route missing here fails
# test_every_route_is_in_the_role_table: add it with its role, and the checks below cover it.
ROLES: dict[tuple[str, str], Role] = {
    ("POST", "/clients"): Role.analyst,
    ("GET", "/clients"): Role.viewer,
    ("GET", "/clients/{client_id}"): Role.viewer,
    ("PUT", "/clients/{client_id}/accounts"): Role.analyst,
    ("GET", "/clients/{client_id}/accounts"): Role.viewer,
    ("PUT", "/clients/{client_id}/document-types"): Role.analyst,
    ("GET", "/clients/{client_id}/document-types"): Role.viewer,
    ("POST", "/clients/{client_id}/closings"): Role.analyst,
    ("GET", "/clients/{client_id}/closings"): Role.viewer,
    ("GET", "/closings/{closing_id}"): Role.viewer,
    ("PATCH", "/closings/{closing_id}"): Role.analyst,
    ("POST", "/closings/{closing_id}/ledger"): Role.analyst,
    ("GET", "/closings/{closing_id}/incidences"): Role.viewer,
    ("GET", "/closings/{closing_id}/incidences/{key}/movements"): Role.viewer,
    ("GET", "/closings/{closing_id}/iterations"): Role.viewer,
    ("GET", "/closings/{closing_id}/iterations/{number}"): Role.viewer,
    ("GET", "/closings/{closing_id}/diff"): Role.viewer,
    ("POST", "/closings/{closing_id}/reprocess"): Role.analyst,
    ("GET", "/admin/cache/stats"): Role.admin,
    ("POST", "/admin/cache/invalidate"): Role.admin,
    ("GET", "/audit"): Role.admin,
    ("PUT", "/closings/{closing_id}/reviews/{key}"): Role.analyst,
    ("GET", "/closings/{closing_id}/reviews"): Role.viewer,
    ("GET", "/clients/{client_id}/accounts/{code}/history"): Role.viewer,
}

# A valid body per operation, so that a missing check shows as a success, not a 422.
LEDGER = b"fecha,comprobante,cuenta,debe,haber\n2026-10-01,V1,1101,5,0\n2026-10-01,V1,2101,0,5\n"
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/clients"): {"json": {"name": "Intruder"}},
    ("PUT", "/clients/{client_id}/accounts"): {"json": [{"code": "9", "name": "x"}]},
    ("PUT", "/clients/{client_id}/document-types"): {"json": [{"code": "X", "name": "x"}]},
    ("POST", "/clients/{client_id}/closings"): {"json": {"period": "2031-01"}},
    ("PATCH", "/closings/{closing_id}"): {"json": {"status": "closed"}},
    ("POST", "/closings/{closing_id}/ledger"): {"files": {"file": ("l.csv", LEDGER)}},
    ("POST", "/closings/{closing_id}/reprocess"): {"json": {"notes": "intrusion"}},
    ("POST", "/admin/cache/invalidate"): {"json": {"scope": "all"}},
    ("PUT", "/closings/{closing_id}/reviews/{key}"): {"json": {"status": "acknowledged"}},
}
QUERY = {"from": 1, "to": 1}  # the diff's required parameters; other routes ignore them


def _api_routes() -> list[tuple[str, str]]:
    """(method, path below /api/v1) of every operation the app documents."""
    placeholder = "postgresql://unused@127.0.0.1:1/unused"
    unused = Settings(database_url=SecretStr(placeholder), redis_url=SecretStr("redis://unused"))
    application = create_app(unused)
    return sorted(
        (method.upper(), path.removeprefix(API))
        for path, operations in application.openapi()["paths"].items()
        if path.startswith(f"{API}/")
        for method in operations
    )


ROUTES = _api_routes()
PROTECTED = [route for route in ROUTES if route in ROLES]
ABOVE_VIEWER = [route for route in PROTECTED if ROLES[route] > Role.viewer]
WITH_IDS = [route for route in PROTECTED if "{" in route[1]]


def _id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


@dataclass(frozen=True)
class Owned:
    """A tenant's resources, with a processed ledger, and keys of every role for that tenant."""

    ids: dict[str, str]
    keys: dict[Role, str]
    stranger: str  # an admin of another tenant

    def path(self, template: str) -> str:
        return API + re.sub(r"\{(\w+)\}", lambda m: self.ids[m.group(1)], template)


@pytest.fixture(scope="module")
async def owned(
    app: FastAPI, make_key: KeyMaker, run_worker: Callable[[], Awaitable[None]]
) -> Owned:
    """Built through the suite's app: its queue is the one run_worker serves."""
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        return await _own(client, make_key, run_worker)


async def _own(
    client: AsyncClient, make_key: KeyMaker, run_worker: Callable[[], Awaitable[None]]
) -> Owned:
    tenant = f"owner-{secrets.token_hex(4)}"
    keys = {role: await make_key(role.name, tenant=tenant) for role in Role}
    analyst = keys[Role.analyst]
    closing = await create_closing(client, analyst, chart=[{"code": "1101", "name": "Caja"}])
    accepted = await upload(client, analyst, closing.id, LEDGER)
    assert accepted.status_code == 202, accepted.text
    await run_worker()
    document = await get_json(client, analyst, f"/closings/{closing.id}/incidences")
    ids = {
        "client_id": closing.client_id,
        "closing_id": closing.id,
        "number": str(document["iteration"]),
        "key": document["incidences"][0]["key"],
        "code": "1101",
    }
    return Owned(ids, keys, await make_key("admin"))


@pytest.fixture(scope="module")
async def http(settings: Settings, redis_prefix: str) -> AsyncIterator[AsyncClient]:
    """An app of its own (own limiter keys, generous anonymous limit): the hundred refused
    calls below must not spend the anonymous budget other tests share."""
    update = {
        "redis_key_prefix": f"{redis_prefix}:sec",
        "rate_limit_anon": "10000/60",
        "auth_cache_ttl_seconds": 0,  # a revocation below must bite at once
    }
    application = create_app(settings.model_copy(update=update))
    async with (
        LifespanManager(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as client,
    ):
        yield client


async def _call(http: AsyncClient, route: tuple[str, str], owned: Owned, key: str | None) -> Any:
    headers = bearer(key) if key is not None else {}
    return await http.request(
        route[0], owned.path(route[1]), params=QUERY, headers=headers, **BODIES.get(route, {})
    )


def test_every_route_is_in_the_role_table() -> None:
    missing = [_id(route) for route in ROUTES if route not in ROLES]
    assert not missing, f"routes without a declared role (add them to ROLES): {missing}"
    assert len(ROUTES) >= 18


@pytest.mark.parametrize("route", PROTECTED, ids=_id)
async def test_a_missing_or_invalid_key_is_401(
    http: AsyncClient, owned: Owned, route: tuple[str, str]
) -> None:
    for key in (None, "li_" + secrets.token_urlsafe(32)):
        response = await _call(http, route, owned, key)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("route", ABOVE_VIEWER, ids=_id)
async def test_a_too_low_role_is_403(
    http: AsyncClient, owned: Owned, route: tuple[str, str]
) -> None:
    lower = Role(ROLES[route] - 1)
    body = assert_problem(await _call(http, route, owned, owned.keys[lower]), 403)
    assert ROLES[route].name in body["detail"]


@pytest.mark.parametrize("route", WITH_IDS, ids=_id)
async def test_another_tenants_ids_are_404(
    http: AsyncClient, owned: Owned, route: tuple[str, str]
) -> None:
    assert_problem(await _call(http, route, owned, owned.stranger), 404)
    if route[0] == "GET":  # the same call by the owner succeeds: the ids are real
        response = await _call(http, route, owned, owned.keys[Role.viewer])
        assert response.status_code == 200, response.text


async def test_lists_show_only_the_callers_tenant(http: AsyncClient, owned: Owned) -> None:
    theirs = await http.get(f"{API}/clients", headers=bearer(owned.stranger))
    assert theirs.status_code == 200
    assert owned.ids["client_id"] not in {item["id"] for item in theirs.json()["items"]}
    mine = await http.get(f"{API}/clients", headers=bearer(owned.keys[Role.viewer]))
    assert owned.ids["client_id"] in {item["id"] for item in mine.json()["items"]}


async def test_no_key_hash_or_connection_string_in_responses_or_logs(
    settings: Settings,
    redis_prefix: str,
    make_key: KeyMaker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from app.services.tenancy import api_keys

    key, other = await make_key("viewer"), await make_key("viewer")
    digest = api_keys.hash_key(key)
    assert settings.database_url is not None and settings.redis_url is not None
    secrets_ = [
        key,
        other,
        digest.hex(),
        repr(digest)[2:-1],
        settings.database_url.get_secret_value(),
        settings.redis_url.get_secret_value(),
    ]
    update = {"redis_key_prefix": f"{redis_prefix}:leak", "rate_limit_read": "2/60"}
    application = create_app(settings.model_copy(update=update))
    caplog.set_level(logging.DEBUG)
    responses = []
    async with (
        LifespanManager(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as client,
    ):
        assert app_state(application).resources.engine.sync_engine.hide_parameters
        for headers in (bearer(key), bearer(key), bearer(key), bearer(key[:-2]), {}):
            responses.append(await client.get(f"{API}/clients", headers=headers))
        async with app_state(application).resources.engine.begin() as conn:
            principal = await api_keys.authenticate(conn, other)
            assert principal is not None
            await api_keys.revoke_key(conn, principal.key_id)
        responses.append(await client.get(f"{API}/clients", headers=bearer(other)))
        for path in ("/health", "/ready", "/metrics", "/openapi.json"):
            responses.append(await client.get(path))
    assert [r.status_code for r in responses[:6]] == [200, 200, 429, 401, 401, 401]
    texts = [r.text + repr(r.headers) for r in responses]
    texts += [r.getMessage() + (caplog.text if r.exc_info else "") for r in caplog.records]
    for text in texts:
        for secret in secrets_:
            assert secret not in text


async def test_cli_lists_and_revokes_keys_without_showing_secrets(
    settings: Settings, http: AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.keys import cmd_api_key
    from app.services.tenancy.api_keys import hash_key

    def cli(action: str, **args: Any) -> tuple[int, str, str]:
        status = cmd_api_key(settings, argparse.Namespace(action=action, **args))
        out, err = capsys.readouterr()
        return status, out, err

    # The CLI runs its own event loop: off this one, in a thread.
    tenant = f"cli-{secrets.token_hex(4)}"
    status, out, _ = await asyncio.to_thread(
        cli, "create", tenant=tenant, role="viewer", name="ops"
    )
    key = out.strip().splitlines()[-1]
    assert status == 0 and (await http.get(f"{API}/clients", headers=bearer(key))).is_success
    status, listing, _ = await asyncio.to_thread(cli, "list", tenant=tenant)
    assert status == 0 and len(listing.splitlines()) == 1 and " active " in listing
    assert key not in listing and hash_key(key).hex() not in listing
    key_id = listing.split()[0]
    status, out, _ = await asyncio.to_thread(cli, "revoke", id=key_id)
    assert status == 0 and key_id in out
    assert_problem(await http.get(f"{API}/clients", headers=bearer(key)), 401)
    status, listing, _ = await asyncio.to_thread(cli, "list", tenant=tenant)
    assert " revoked " in listing
    assert (await asyncio.to_thread(cli, "revoke", id=key_id))[0] == 1  # already revoked
    status, _, err = await asyncio.to_thread(cli, "revoke", id="not-a-uuid")
    assert status == 2 and "not a key id" in err and "Traceback" not in err
