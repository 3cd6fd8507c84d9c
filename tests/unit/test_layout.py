"""The shape of the code base, kept: small modules, folders a newcomer can take in at a glance."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 350
MAX_MODULES_PER_FOLDER = 14


def _sources() -> list[Path]:
    return sorted(
        path
        for top in ("app", "workers")
        for path in (ROOT / top).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _sources()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_folder_holds_more_modules_than_the_limit() -> None:
    folders: dict[Path, int] = {}
    for path in _sources():
        folders[path.parent] = folders.get(path.parent, 0) + 1
    crowded = {
        str(f.relative_to(ROOT)): n for f, n in folders.items() if n > MAX_MODULES_PER_FOLDER
    }
    assert not crowded, f"folders over {MAX_MODULES_PER_FOLDER} modules: {crowded}"
