"""`ledger-incidences cache warm`: pre-load the snapshots of open closings into Redis."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from app.cli.context import resolved
from app.settings import Settings


async def _warm_cache(settings: Settings) -> tuple[int, int]:
    from app.resources import Resources
    from app.services.snapshot_cache.writes import warm

    resources = Resources.build(settings)
    try:
        return await warm(resources)
    finally:
        await resources.aclose()


def cmd_cache(settings: Settings, args: argparse.Namespace) -> int:
    with resolved(settings) as concrete:
        written, current = asyncio.run(_warm_cache(concrete))
    print(f"cache warm: {written} snapshot(s) of open closings loaded, {current} already current")
    return 0


def register(commands: Any) -> None:
    """The `cache` subcommands."""
    cache = commands.add_parser("cache", help="snapshot cache operations")
    cache.set_defaults(handler=cmd_cache)
    cache_actions = cache.add_subparsers(dest="action", required=True)
    cache_actions.add_parser("warm", help="pre-load the snapshots of open closings into Redis")
