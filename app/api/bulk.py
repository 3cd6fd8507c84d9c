"""A bulk reference-data body (JSON array or CSV) read into entries: a pure function of the
body, so a large one is read in the CPU pool (app/adapters/cpu_pool.py), off the event loop.

The body is never parsed whole: items are read one at a time and the item cap holds while
reading (app/services/reference_data/changes.py); JSON items are validated one by one, and at most
MAX_ERRORS validation errors are collected, however many items are wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.api.schemas import StrictModel
from app.services.reference_data.changes import Entry, json_items, parse_csv

MAX_ERRORS = 100


@dataclass(frozen=True)
class BulkBody:
    """The body's entries, or the validation errors of its JSON items (loc, msg, type)."""

    entries: list[Entry]
    errors: list[dict[str, Any]]


def read_json(body: bytes, model: type[StrictModel]) -> BulkBody:
    """A JSON array of `model` items; only the fields each item sent are in its entry (an
    omitted optional field is left as stored)."""
    entries: list[Entry] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(json_items(body)):
        try:
            item = model.model_validate_json(raw)
        except ValidationError as exc:
            errors += [
                {"loc": ("body", index, *e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            if len(errors) >= MAX_ERRORS:
                break
            continue
        entries.append(Entry(f"item {index}", item.model_dump(include=item.model_fields_set)))
    return BulkBody(entries, errors[:MAX_ERRORS])


def read_csv(
    body: bytes, aliases: Mapping[str, tuple[str, ...]], column_map: Mapping[str, str]
) -> BulkBody:
    """CSV rows through the header aliases (and `column_map`)."""
    return BulkBody(parse_csv(body, aliases, column_map), [])
