"""BOOTSTRAP_API_KEY (SPEC §8): at least 32 characters or the service refuses to start, without
saying the key; changing it revokes the previous one; a key's stored prefix gives little away."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr, ValidationError

from app.adapters.postgres.tables import api_keys as api_keys_table
from app.api.state import app_state
from app.domain.errors import InvalidInput
from app.main import create_app
from app.services.tenancy import api_keys
from app.settings import Settings
from tests.conftest import bearer
from tests.e2e.conftest import clean_env

CLIENTS = "/api/v1/clients"
SHORT = "my-short-secret-31-characters!!"


def test_a_short_key_is_refused_without_being_shown() -> None:
    assert len(SHORT) == 31
    with pytest.raises(ValidationError) as refused:
        Settings(bootstrap_api_key=SHORT)
    assert "at least 32 characters" in str(refused.value)
    assert SHORT not in str(refused.value)
    Settings(bootstrap_api_key=SHORT + "x")  # 32 is enough


def test_the_service_refuses_to_start_with_a_short_key() -> None:
    started = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        env=clean_env(BOOTSTRAP_API_KEY=SHORT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert "BOOTSTRAP_API_KEY" in started.stderr and "at least 32" in started.stderr
    assert SHORT not in started.stderr + started.stdout
    assert "Traceback" not in started.stderr


async def _bootstrapped(settings: Settings, key: str) -> list[tuple[str, bool]]:
    """Start an app with BOOTSTRAP_API_KEY=key, check it answers the key; then the stored
    (prefix, revoked) of every bootstrap key of tenant `default`."""
    application = create_app(settings.model_copy(update={"bootstrap_api_key": SecretStr(key)}))
    async with (
        LifespanManager(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as http,
    ):
        assert (await http.get(CLIENTS, headers=bearer(key))).status_code == 200
        async with app_state(application).resources.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(api_keys_table.c.key_prefix, api_keys_table.c.revoked_at)
                .where(api_keys_table.c.name == api_keys.BOOTSTRAP_NAME)
                .order_by(api_keys_table.c.created_at)
            )
            return [(row.key_prefix, row.revoked_at is not None) for row in rows]


async def _answers(settings: Settings, key: str) -> int:
    application = create_app(settings)  # no bootstrap key: nothing is changed
    async with (
        LifespanManager(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as http,
    ):
        return (await http.get(CLIENTS, headers=bearer(key))).status_code


def _live(keys: list[tuple[str, bool]]) -> list[str]:
    """The prefixes of the live bootstrap keys; revoked ones keep no prefix at all."""
    assert all(prefix == "" for prefix, revoked in keys if revoked)
    return [prefix for prefix, revoked in keys if not revoked]


async def test_changing_the_key_revokes_the_previous_one(settings: Settings) -> None:
    first = "first-bootstrap-" + secrets.token_hex(16)
    second = "second-bootstrap-" + secrets.token_hex(16)
    assert _live(await _bootstrapped(settings, first)) == [first[:10]]
    assert _live(await _bootstrapped(settings, second)) == [second[:10]]
    assert await _answers(settings, first) == 401
    assert await _answers(settings, second) == 200
    # Setting the first value again makes it the live bootstrap key again.
    assert _live(await _bootstrapped(settings, first)) == [first[:10]]
    assert await _answers(settings, second) == 401


async def test_stored_prefixes_show_at_most_a_quarter_of_a_key(settings: Settings) -> None:
    assert api_keys.shown_prefix("k" * 32) == "k" * 8
    assert api_keys.shown_prefix("k" * 46) == "k" * 10
    generated = api_keys.generate_key()
    assert len(generated) >= 32 and api_keys.shown_prefix(generated) == generated[:10]
    application = create_app(settings)
    async with (
        LifespanManager(application),
        app_state(application).require_resources().engine.begin() as conn,
    ):
        with pytest.raises(InvalidInput, match="reserved"):
            await api_keys.create_key(
                conn, tenant=api_keys.DEFAULT_TENANT, role="admin", name="bootstrap"
            )
