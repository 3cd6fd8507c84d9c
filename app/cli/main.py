"""The `ledger-incidences` CLI: dev, serve, worker, migrate, api-key, upload, monitor, cache,
backup, restore. Each command lives in its own module, which registers its subparser and handler."""

from __future__ import annotations

import argparse
import sys

from app.cli import backup, cache, context, dev, keys, monitor, serve, upload
from app.logging import configure_logging
from app.settings import get_settings

COMMAND_MODULES = (dev, serve, context, keys, upload, monitor, cache, backup)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="ledger-incidences",
        description="Pre-computed general-ledger incidences for monthly closings.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    status: int = args.handler(settings, args)
    return status


if __name__ == "__main__":
    sys.exit(main())
