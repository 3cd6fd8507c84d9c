"""Backups with pg_dump's custom format, and restores with pg_restore.

The client binaries must match the server: pg_dump refuses a server newer than itself, and
pg_restore cannot read an archive made by a newer pg_dump. The server's major version
(`SHOW server_version_num`) picks them among pgserver's bundled binaries (the embedded
server), Debian's /usr/lib/postgresql/<major>/bin, and whatever pg_dump is on PATH: the same
major when there is one, else the oldest that is newer than the server.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

BACKUP_PREFIX = "ledger-incidences-"
BACKUP_SUFFIX = ".dump"
_STAMP = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(rf"{re.escape(BACKUP_PREFIX)}(\d{{8}}T\d{{6}}Z){re.escape(BACKUP_SUFFIX)}")
# Query parameters libpq understands (asyncpg's `ssl` is translated to `sslmode`).
_LIBPQ_PARAMS = {"host", "port", "sslmode", "sslrootcert", "sslcert", "sslkey", "options"}


@dataclass(frozen=True)
class Connection:
    """A libpq connection string without the password, and the password for PGPASSWORD."""

    dsn: str
    password: str | None

    def env(self) -> dict[str, str]:
        """The environment of a client process (the password never reaches its command line)."""
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


def libpq_connection(database_url: str) -> Connection:
    """DATABASE_URL (any SQLAlchemy/asyncpg spelling) as a libpq connection."""
    url = make_url(database_url)
    query = {k: v for k, v in url.query.items() if k in _LIBPQ_PARAMS}
    if "ssl" in url.query and "sslmode" not in query:
        query["sslmode"] = url.query["ssl"]
    plain = url.set(drivername="postgresql", password=None, query=query)
    return Connection(plain.render_as_string(hide_password=False), url.password)


async def server_major(connection: Connection) -> int:
    """The server's major version (15 for 15.20)."""
    conn = await asyncpg.connect(connection.dsn, password=connection.password, timeout=10)
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    try:
        import pgserver  # the `embedded` extra

        dirs.append(Path(pgserver.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    dirs.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).parent)
    return [d for d in dirs if (d / "pg_dump").exists() and (d / "pg_restore").exists()]


def tool_major(binary: Path) -> int | None:
    """The major version a client binary reports, or None if it does not run."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\b(\d+)(?:\.\d+)?", out)
    return int(found.group(1)) if found else None


def client_bindir(major: int) -> Path:
    """The directory of pg_dump/pg_restore fit for a server of this major version."""
    versions = [(tool_major(d / "pg_dump"), d) for d in _candidate_dirs()]
    usable = sorted((v, str(d)) for v, d in versions if v is not None and v >= major)
    if not usable:
        found = ", ".join(f"{d} ({v})" for v, d in versions) or "none"
        raise RuntimeError(f"no pg_dump of major version >= {major} found (found: {found})")
    exact = [d for v, d in usable if v == major]
    return Path(exact[0] if exact else usable[0][1])


def backup_name(now: datetime) -> str:
    """The file name of a backup taken at `now` (UTC): sorts by time."""
    return f"{BACKUP_PREFIX}{now.astimezone(UTC).strftime(_STAMP)}{BACKUP_SUFFIX}"


def backup_time(path: Path) -> datetime | None:
    """When a backup was taken, from its name; None for any other file."""
    match = _NAME.fullmatch(path.name)
    if match is None:
        return None
    return datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)


def backup(database_url: str, directory: Path, now: datetime | None = None) -> Path:
    """Dump the database into DIRECTORY/ledger-incidences-<UTC time>.dump; returns the path."""
    connection = libpq_connection(database_url)
    bindir = client_bindir(asyncio.run(server_major(connection)))
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / backup_name(now or datetime.now(UTC))
    partial = target.with_name(target.name + ".partial")  # never mistaken for a backup
    # The archive holds every tenant's data: readable by its owner only (pg_dump keeps the mode
    # of the file it truncates).
    partial.touch(mode=0o600)
    partial.chmod(0o600)
    try:
        subprocess.run(
            [str(bindir / "pg_dump"), "--format=custom", f"--file={partial}", connection.dsn],
            env=connection.env(),
            check=True,
            capture_output=True,
        )
        partial.replace(target)
    except subprocess.CalledProcessError as exc:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"pg_dump failed: {exc.stderr.decode(errors='replace')}") from None
    return target


def rotate(directory: Path, keep_days: float, now: datetime | None = None) -> list[Path]:
    """Delete backups (by the time in their name) older than keep_days; returns them."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    removed = []
    for path in sorted(directory.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}")):
        taken = backup_time(path)
        if taken is not None and taken < cutoff:
            path.unlink()
            removed.append(path)
    return removed


def restore(database_url: str, archive: Path, *, clean: bool = False) -> None:
    """Restore an archive into the database, all or nothing (one transaction)."""
    if not archive.is_file():
        raise RuntimeError(f"no backup file at {archive}")
    connection = libpq_connection(database_url)
    bindir = client_bindir(asyncio.run(server_major(connection)))
    args = [
        str(bindir / "pg_restore"),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        *(["--clean", "--if-exists"] if clean else []),
        f"--dbname={connection.dsn}",
        str(archive),
    ]
    result = subprocess.run(args, env=connection.env(), capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pg_restore failed: {result.stderr.decode(errors='replace')}")
