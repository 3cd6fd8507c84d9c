"""`ledger-incidences backup` and `restore`: pg_dump/pg_restore of the service's database."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.settings import Settings

DEFAULT_KEEP_DAYS = 14.0


@contextmanager
def _database_url(settings: Settings) -> Iterator[str]:
    """DATABASE_URL, or the embedded server's under DATA_DIR (no Redis is needed here)."""
    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    warnings.filterwarnings("ignore", module="platformdirs")
    from app.embedded import embedded_servers

    with embedded_servers(settings.data_dir, redis=False) as urls:
        yield urls.database_url


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    """Dump, then rotate; prints the new backup's path last."""
    from app.services.ops import backup

    directory = Path(args.dir) if args.dir else settings.data_dir / "backups"
    with _database_url(settings) as url:
        try:
            path = backup.backup(url, directory)
        except RuntimeError as exc:
            print(f"backup failed: {exc}", file=sys.stderr)
            return 1
    for old in backup.rotate(directory, args.keep_days):
        print(f"removed {old} (older than {args.keep_days:g} days)")
    print(path)  # the last line of stdout
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    """Restore a backup into the configured database."""
    from app.services.ops import backup

    with _database_url(settings) as url:
        try:
            backup.restore(url, Path(args.file), clean=args.clean)
        except RuntimeError as exc:
            print(f"restore failed: {exc}", file=sys.stderr)
            return 1
    print(f"restored {args.file}")
    return 0


def _positive_days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--keep-days {text!r} is not a number") from None
    if days <= 0:
        raise argparse.ArgumentTypeError("--keep-days must be more than 0")
    return days


def register(commands: Any) -> None:
    """The `backup` and `restore` subcommands."""
    backup = commands.add_parser(
        "backup", help="pg_dump the database (custom format, timestamped) and rotate old ones"
    )
    backup.set_defaults(handler=cmd_backup)
    backup.add_argument("--dir", help="where backups go (default: DATA_DIR/backups)")
    backup.add_argument(
        "--keep-days",
        type=_positive_days,
        default=DEFAULT_KEEP_DAYS,
        help="delete backups in --dir taken more than this many days ago (default: 14)",
    )
    restore = commands.add_parser("restore", help="pg_restore a backup into DATABASE_URL")
    restore.set_defaults(handler=cmd_restore)
    restore.add_argument("file")
    restore.add_argument(
        "--clean", action="store_true", help="drop the database's existing objects first"
    )
