"""The `ledger-incidences` CLI: dev, serve, worker, migrate, api-key, upload, monitor, cache,
backup, restore. Each command lives in its own module, which registers its subparser and handler."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

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
    try:
        settings = get_settings()
    except ValidationError as exc:  # a clear refusal to start, never the refused value
        for error in exc.errors(include_url=False, include_input=False):
            name = "_".join(str(part) for part in error["loc"]).upper()
            reason = error["msg"].removeprefix("Value error, ")
            print(f"not starting: invalid {name}: {reason}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    status: int = args.handler(settings, args)
    return status


if __name__ == "__main__":
    sys.exit(main())
