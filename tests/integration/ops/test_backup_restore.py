"""`ledger-incidences backup` and `restore` (real pg_dump/pg_restore): a backup restored into a
fresh database serves the same snapshot; rotation removes only old backups."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from httpx import AsyncClient

from app.services.ops.backup import (
    backup_name,
    backup_time,
    client_bindir,
    libpq_connection,
    server_major,
    tool_major,
)
from app.settings import Settings
from tests.conftest import Databases, KeyMaker, bearer
from tests.e2e.conftest import settings_env
from tests.helpers import create_closing, upload
from tests.ops_helpers import app_client, unique_prefix, variant

LEDGER = (
    b"fecha,comprobante,cuenta,tipo_doc,debe,haber\n"
    b"2026-10-01,V1,1101,FAC,100.00,0\n"
    b"2026-10-01,V1,9999,XX,0,90.00\n"
    b"2026-10-02,V2,1101,FAC,7.50,0\n"
    b"2026-10-02,V2,4101,FAC,0,7.50\n"
)


def cli(args: list[str], settings: Settings, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m app.cli ARGS` against the settings' database, to completion."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=settings_env(settings),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def size_and_mode(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, stat.S_IMODE(info.st_mode)


async def test_a_restored_backup_serves_the_same_snapshot(
    app: FastAPI,
    client: AsyncClient,
    settings: Settings,
    databases: Databases,
    make_key: KeyMaker,
    run_worker: Callable[[], Awaitable[None]],
    tmp_path: Path,
) -> None:
    key = await make_key("analyst")
    closing = await create_closing(client, key, name="Backed up")
    assert (await upload(client, key, closing.id, LEDGER)).status_code == 202
    await run_worker()
    path = f"/api/v1/closings/{closing.id}/incidences"
    original = await client.get(path, headers=bearer(key))
    assert original.status_code == 200, original.text
    drill_key = original.json()["incidences"][0]["key"]
    drill = f"{path}/{drill_key}/movements"
    original_lines = await client.get(drill, headers=bearer(key))
    assert original_lines.status_code == 200

    backups = tmp_path / "backups"
    now = datetime.now(UTC)
    old = backups / backup_name(now - timedelta(days=10))
    recent = backups / backup_name(now - timedelta(days=2))
    unrelated = backups / "notes.txt"
    backups.mkdir()
    for planted in (old, recent, unrelated):
        planted.write_bytes(b"planted")

    made = cli(["backup", "--dir", str(backups), "--keep-days", "7"], settings, tmp_path)
    assert made.returncode == 0, made.stderr
    archive = Path(made.stdout.strip().splitlines()[-1])
    size, mode = size_and_mode(archive)
    assert archive.parent == backups and size > 0
    assert mode == 0o600  # every tenant's data: for its owner's eyes only
    taken = backup_time(archive)
    assert taken is not None and abs((taken - now).total_seconds()) < 120
    assert not old.exists(), "a backup older than --keep-days was kept"
    assert recent.exists() and unrelated.exists()
    assert f"removed {old}" in made.stdout
    assert not list(backups.glob("*.partial"))

    fresh_url = await databases.create("restored")  # empty: no schema at all
    fresh = variant(
        settings, database_url=fresh_url, redis_key_prefix=unique_prefix(settings, "restore")
    )
    restored = cli(["restore", str(archive)], fresh, tmp_path)
    assert restored.returncode == 0, restored.stderr

    # Restoring again over the now populated database needs --clean, and then works.
    twice = cli(["restore", str(archive)], fresh, tmp_path)
    assert twice.returncode == 1 and "restore failed" in twice.stderr
    cleaned = cli(["restore", "--clean", str(archive)], fresh, tmp_path)
    assert cleaned.returncode == 0, cleaned.stderr

    # Its own Redis prefix: nothing can come from the original's cache.
    async with app_client(
        settings, database_url=fresh_url, redis_key_prefix=fresh.redis_key_prefix
    ) as (_, http):
        assert (await http.get("/ready")).status_code == 200  # at the migration head
        copy = await http.get(path, headers=bearer(key))  # the API keys came along too
        copy_lines = await http.get(drill, headers=bearer(key))
    assert copy.status_code == 200, copy.text
    assert copy.json() == original.json()
    assert copy.headers["ETag"] == original.headers["ETag"]
    assert copy_lines.json() == original_lines.json()


def test_restore_of_a_missing_file_fails_cleanly(settings: Settings, tmp_path: Path) -> None:
    result = cli(["restore", str(tmp_path / "nope.dump")], settings, tmp_path)
    assert result.returncode == 1
    assert "no backup file" in result.stderr
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() not in result.stderr + result.stdout


async def test_client_binaries_are_chosen_by_the_servers_major_version(settings: Settings) -> None:
    """pgserver's for the embedded server, Debian's postgresql-client for the local one."""
    assert settings.database_url is not None
    connection = libpq_connection(settings.database_url.get_secret_value())
    major = await server_major(connection)
    bindir = client_bindir(major)
    assert tool_major(bindir / "pg_dump") == major
    assert tool_major(bindir / "pg_restore") == major
    assert connection.password is None or connection.password not in connection.dsn
