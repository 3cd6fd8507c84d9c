"""`ledger-incidences api-key create|list|revoke`: keys are printed once, stored hashed."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from typing import Any

from app.cli.context import resolved, with_connection
from app.domain.errors import InvalidInput
from app.settings import Settings


def cmd_api_key(settings: Settings, args: argparse.Namespace) -> int:
    from app.services.tenancy import api_keys

    with resolved(settings) as concrete:
        if args.action == "create":
            try:
                key = asyncio.run(
                    with_connection(
                        concrete,
                        lambda conn: api_keys.create_key(
                            conn, tenant=args.tenant, role=args.role, name=args.name
                        ),
                    )
                )
            except InvalidInput as exc:  # a reserved name
                print(exc.detail, file=sys.stderr)
                return 2
            print(f"API key for tenant {args.tenant!r}, role {args.role}, name {args.name!r}:")
            print(key)  # the last line of stdout, so scripts can `| tail -n 1`
        elif args.action == "list":
            keys = asyncio.run(
                with_connection(concrete, lambda conn: api_keys.list_keys(conn, args.tenant))
            )
            for info in keys:
                state = "revoked" if info.revoked else "active"
                print(
                    f"{info.id}  {info.tenant:<16} {info.role:<8} {state:<8} "
                    f"{info.key_prefix}…  {info.name}  (created {info.created_at})"
                )
        else:
            try:
                key_id = uuid.UUID(args.id)
            except ValueError:
                print(f"not a key id: {args.id!r} (see `api-key list`)", file=sys.stderr)
                return 2
            revoked = asyncio.run(
                with_connection(concrete, lambda conn: api_keys.revoke_key(conn, key_id))
            )
            if not revoked:
                print(f"no active API key with id {args.id}", file=sys.stderr)
                return 1
            print(f"revoked API key {args.id}")
    return 0


def register(commands: Any) -> None:
    """The `api-key` subcommands."""
    api_key = commands.add_parser("api-key", help="manage API keys")
    api_key.set_defaults(handler=cmd_api_key)
    actions = api_key.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", required=True, choices=["viewer", "analyst", "admin"])
    create.add_argument("--name", required=True)
    listing = actions.add_parser("list", help="list keys (never their secrets nor hashes)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    revoke = actions.add_parser("revoke", help="revoke a key by id: refused from then on")
    revoke.add_argument("id", help="the key's id, as `api-key list` prints it")
