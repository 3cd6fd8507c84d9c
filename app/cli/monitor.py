"""`ledger-incidences monitor`: the service's health at a glance, read from its /health.

Every figure and every recommendation is the API's own (SPEC §8): the score, each check, queue
depth, live workers, throughput, latency, cache hit rate and error rate, and for each warning
the check's `output`, which says what to do. Exit status: 0, 1 when the status is `fail`, 2 when
the API could not be read.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from app.settings import Settings

HTTP_TIMEOUT_SECONDS = 5.0
_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}
_UNITS = {"percent": "%", "ms": " ms"}

Health = dict[str, Any]


def read_health(http: httpx.Client) -> Health | str:
    """The /health document (a 503 carries one too), or why there is none."""
    try:
        response = http.get("/health")
    except httpx.HTTPError as exc:
        return f"could not reach {http.base_url}: {exc}"
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("checks"), dict):
        return f"{response.url} answered {response.status_code} without a health document"
    return document


def exit_code(health: Health | str) -> int:
    """0, 1 when the status is `fail`, 2 without a document."""
    if isinstance(health, str):
        return 2
    return 1 if health.get("status") == "fail" else 0


def _entry(health: Health, name: str) -> dict[str, Any]:
    entries = health["checks"].get(name) or [{}]
    return dict(entries[0])


def _observed(health: Health, name: str) -> Any:
    return _entry(health, name).get("observedValue")


def summary(health: Health) -> dict[str, Any]:
    """The --json document: the headline figures, the recommendations, and every check."""
    checks = {name: _entry(health, name) for name in health["checks"]}
    return {
        "status": health.get("status"),
        "score": health.get("score"),
        "queue_depth": _observed(health, "queue:depth"),
        "live_workers": _observed(health, "workers:count"),
        "throughput": _observed(health, "workers:throughput"),
        "latency_p95_ms": _observed(health, "api:responseTime"),
        "cache_hit_rate_percent": _observed(health, "cache:hitRate"),
        "error_rate_percent": _observed(health, "api:errorRate"),
        "recommendations": [
            {"check": name, "status": entry["status"], "recommendation": entry.get("output")}
            for name, entry in checks.items()
            if entry.get("status") in ("warn", "fail")
        ],
        "checks": {
            name: {
                "status": entry.get("status"),
                "observed": entry.get("observedValue"),
                "unit": entry.get("observedUnit"),
                "output": entry.get("output"),
            }
            for name, entry in checks.items()
        },
    }


def _shown(value: Any, unit: str | None = None) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):  # throughput: {"movements_per_minute": …, …}
        parts = (f"{v:g} {k.removesuffix('_per_minute')}" for k, v in value.items())
        return f"{', '.join(parts)} {unit or ''}".rstrip()
    text = f"{value:g}" if isinstance(value, int | float) else str(value)
    if not unit:
        return text
    return text + _UNITS.get(unit, f" {unit}")


def _figures(about: dict[str, Any]) -> str:
    rate = about["throughput"] or {}
    return " · ".join(
        (
            f"queue {_shown(about['queue_depth'])}",
            f"workers {_shown(about['live_workers'])}",
            f"{_shown(rate.get('movements_per_minute'))} movements/min",
            f"{_shown(rate.get('iterations_per_minute'))} iterations/min",
            f"latency p95 {_shown(about['latency_p95_ms'], 'ms')}",
            f"cache hit rate {_shown(about['cache_hit_rate_percent'], 'percent')}",
            f"errors {_shown(about['error_rate_percent'], 'percent')}",
        )
    )


def render(health: Health | str) -> Group:
    """The terminal view of one reading: the status and score, the figures, every check, and a
    recommendation for each one that warns or fails."""
    if isinstance(health, str):
        return Group(Text(health, style="bold red"))
    about = summary(health)
    status = str(about["status"])
    title = Text.assemble(
        ("Ledger Incidences ", "bold"),
        (status.upper(), _STYLE.get(status, "")),
        f"  score {about['score']}",
    )
    table = Table("check", "status", "observed", "note", header_style="bold")
    for name, check in about["checks"].items():
        state = str(check["status"])
        note = check["output"] if state == "pass" else "see below"
        observed = _shown(check["observed"], check["unit"])
        table.add_row(name, Text(state, _STYLE.get(state, "")), observed, note)
    advice = [
        Text(f"→ {item['check']}: {item['recommendation']}", style="yellow")
        for item in about["recommendations"]
    ]
    return Group(title, Text(_figures(about)), table, *advice)


def _print_json(health: Health | str, indent: int | None) -> None:
    if isinstance(health, str):
        Console(stderr=True).print(f"[red]{health}[/red]")
    else:
        print(json.dumps(summary(health), indent=indent), flush=True)


def _watch(
    http: httpx.Client, show: Callable[[Health | str], None], interval: float, count: int
) -> Health | str:
    """Read and show /health every `interval` seconds, `count` times (0: until Ctrl+C); returns
    the last reading."""
    health, shown = read_health(http), 0
    try:
        while True:
            show(health)
            shown += 1
            if count and shown >= count:
                return health
            time.sleep(interval)
            health = read_health(http)
    except KeyboardInterrupt:
        return health


def monitor(
    url: str, key: str | None, *, watch: bool, as_json: bool, interval: float, count: int
) -> int:
    """Show /health once, or refreshed every `interval` seconds; the exit status."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    base = url.rstrip("/")
    with httpx.Client(base_url=base, headers=headers, timeout=HTTP_TIMEOUT_SECONDS) as http:
        if not watch:
            health = read_health(http)
            if as_json:
                _print_json(health, indent=2)
            else:
                Console().print(render(health))
        elif as_json:  # one line per refresh, for scripts that follow it
            health = _watch(http, lambda h: _print_json(h, indent=None), interval, count)
        else:
            with Live(auto_refresh=False) as live:
                health = _watch(
                    http, lambda h: live.update(render(h), refresh=True), interval, count
                )
    return exit_code(health)


def cmd_monitor(settings: Settings, args: argparse.Namespace) -> int:
    return monitor(
        args.url,
        args.key,
        watch=args.watch,
        as_json=args.json,
        interval=args.interval,
        count=args.count,
    )


def register(commands: Any) -> None:
    """The `monitor` subcommand."""
    parser = commands.add_parser(
        "monitor", help="health score, checks, figures and recommendations, from /health"
    )
    parser.add_argument(
        "--url", default=os.environ.get("LEDGER_INCIDENCES_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument("--key", default=os.environ.get("LEDGER_INCIDENCES_KEY"))
    parser.add_argument("--watch", action="store_true", help="refresh until Ctrl+C")
    parser.add_argument(
        "--json", action="store_true", help="one JSON document (a line per refresh)"
    )
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes")
    parser.add_argument(
        "--count", type=int, default=0, help="with --watch: stop after this many refreshes"
    )
    parser.set_defaults(handler=cmd_monitor)
