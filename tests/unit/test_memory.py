"""gc_paused: collection off inside, back to what it was after, errors included; memory is
released only after the process grew; tune_malloc's settings are taken in a process of their
own; Polars' allocator settings are in place before the command line loads Polars."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys

import pytest

from app.memory import MemoryReleaser, gc_paused, resident_bytes


def test_collection_is_off_inside_and_on_again_after() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_turns_it_back_on() -> None:
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_overlapping_pauses_leave_it_on_once_both_end() -> None:
    first, second = gc_paused(), gc_paused()
    first.__enter__()
    second.__enter__()  # began while the first one had it off
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_it_stays_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_glibc_takes_the_workers_malloc_settings() -> None:
    # In a child: the settings are process-wide, and meant for a worker before its threads.
    code = "from app.memory import tune_malloc; print(tune_malloc())"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    on_glibc = platform.libc_ver()[0] == "glibc"
    assert shown.stdout.strip() == str(on_glibc)


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc/self/statm")
def test_memory_is_released_only_after_the_process_grew() -> None:
    growth = 32 * 2**20
    releaser = MemoryReleaser(growth_bytes=growth)
    assert resident_bytes() > 0
    assert not releaser.due()  # a small job: nothing to give back
    held = b"x" * (2 * growth)  # written, so resident
    assert releaser.due()
    del held
    releaser.release()
    assert not releaser.due()  # measured again from the size the release left


# Reports the allocator settings Polars finds as it loads, during the command line's imports.
_AT_POLARS_IMPORT = """
import importlib.abc, os, sys

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "polars":
            print("conf:", os.environ.get("_RJEM_MALLOC_CONF"))
            sys.meta_path.remove(self)
        return None

sys.meta_path.insert(0, Watch())
import app.cli.main
"""


@pytest.mark.parametrize(
    "inherited",
    [
        None,
        # What importing Polars writes into the environment of the process that imports it, and
        # so of every process that one starts (a test run, a benchmark, a supervisor).
        "dirty_decay_ms:500,muzzy_decay_ms:1000",
        "thp:always",  # an operator's own setting is kept, ours come after it
    ],
)
def test_polars_allocator_settings_are_in_place_before_the_command_line_loads_polars(
    inherited: str | None,
) -> None:
    env = {key: value for key, value in os.environ.items() if key != "_RJEM_MALLOC_CONF"}
    if inherited is not None:
        env["_RJEM_MALLOC_CONF"] = inherited
    ran = subprocess.run(
        [sys.executable, "-c", _AT_POLARS_IMPORT], env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    ours = "narenas:1,dirty_decay_ms:100,muzzy_decay_ms:0"  # jemalloc: the last one wins
    expected = ours if inherited is None else f"{inherited},{ours}"
    assert f"conf: {expected}\n" in ran.stdout, ran.stdout
