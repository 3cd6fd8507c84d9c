"""`ledger-incidences upload`: send a ledger with a progress bar, then follow its iteration."""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from app.settings import Settings

POLL_SECONDS = 0.5


class _ProgressReader(io.BufferedReader):
    """A file reader that advances a progress bar as httpx streams it out."""

    def __init__(self, raw: io.FileIO, progress: Progress, task: TaskID) -> None:
        super().__init__(raw)
        self._progress, self._task = progress, task

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self._progress.advance(self._task, len(chunk))
        return chunk


def upload(
    path: Path,
    closing_id: str,
    *,
    url: str,
    key: str | None,
    decimal_separator: str | None = None,
    column_map: str | None = None,
) -> int:
    """Upload, wait for the iteration to finish, print its summary; exit code 0 on success."""
    console = Console(stderr=True)
    if not key:
        console.print("[red]an API key is needed: --key or LEDGER_INCIDENCES_KEY[/red]")
        return 2
    if not path.is_file():
        console.print(f"[red]no such file: {path}[/red]")
        return 2
    headers = {"Authorization": f"Bearer {key}"}
    fields = {}
    if decimal_separator:  # without it, the service detects it from the amounts
        fields["decimal_separator"] = decimal_separator
    if column_map:
        fields["column_map"] = column_map
    base = url.rstrip("/")
    try:
        with httpx.Client(
            base_url=base, headers=headers, timeout=httpx.Timeout(30, read=600)
        ) as http:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("uploading", total=path.stat().st_size)
                with io.FileIO(path, "r") as raw:
                    response = http.post(
                        f"/api/v1/closings/{closing_id}/ledger",
                        data=fields,
                        files={"file": (path.name, _ProgressReader(raw, progress, task))},
                    )
            if response.status_code != 202:
                _print_problem(console, response)
                return 1
            location = response.headers["Location"]
            iteration = _follow(http, location, console)
    except httpx.HTTPError as exc:  # unreachable server, timeout, or an error while polling
        console.print(f"[red]request to {base} failed: {exc}[/red]")
        return 1
    print(json.dumps(iteration, indent=2, default=str))
    return 0 if iteration["status"] == "succeeded" else 1


def _follow(http: httpx.Client, location: str, console: Console) -> dict[str, Any]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[movements]} movements"),
        console=console,
    ) as progress:
        task = progress.add_task("processing", total=1.0, movements=0)
        while True:
            iteration: dict[str, Any] = http.get(location).raise_for_status().json()
            progress.update(
                task,
                completed=iteration["progress"],
                description=f"iteration {iteration['number']} {iteration['status']}",
                movements=iteration["movements_processed"],
            )
            if iteration["status"] in ("succeeded", "failed"):
                return iteration
            time.sleep(POLL_SECONDS)


def _print_problem(console: Console, response: httpx.Response) -> None:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    console.print(f"[red]upload refused ({response.status_code}): {detail}[/red]")


def cmd_upload(settings: Settings, args: argparse.Namespace) -> int:
    return upload(
        Path(args.file),
        args.closing,
        url=args.url,
        key=args.key,
        decimal_separator=args.decimal_separator,
        column_map=args.column_map,
    )


def register(commands: Any) -> None:
    """The `upload` subcommand."""
    upload = commands.add_parser("upload", help="upload a ledger and follow its processing")
    upload.add_argument("file")
    upload.add_argument("--closing", required=True, help="closing id")
    upload.add_argument(
        "--url", default=os.environ.get("LEDGER_INCIDENCES_URL", "http://127.0.0.1:8000")
    )
    upload.add_argument("--key", default=os.environ.get("LEDGER_INCIDENCES_KEY"))
    upload.add_argument(
        "--decimal-separator",
        choices=[".", ","],
        help="the amounts' decimal separator (detected from them when not given)",
    )
    upload.add_argument(
        "--column-map", default=None, help='JSON object {"field": "Header in the file"}'
    )
    upload.set_defaults(handler=cmd_upload)
