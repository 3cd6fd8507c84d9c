"""bench/load.py for a short while: the mixed read/write load of 64 connections gets no 5xx and
no transport error, and the re-processing it causes never fails (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import clean_env

ROOT = Path(__file__).resolve().parents[2]


def test_ten_seconds_of_mixed_load_get_no_server_error() -> None:
    # No DATABASE_URL / REDIS_URL: the bench runs embedded servers of its own in a temp dir.
    done = subprocess.run(
        [sys.executable, "bench/load.py", "--seconds", "10", "--drain-seconds", "60"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr[-4000:]}"
    assert done.returncode == 0, output
    result = json.loads(done.stdout.rsplit("RESULT ", 1)[1])
    assert result["status"]["5xx"] == result["status"]["transport"] == 0, output
    assert all(count > 0 for count in result["by_kind"].values()), output  # every kind ran
    assert result["status"]["2xx"] > 0 and result["status"]["4xx"] == 0, output
    assert result["iterations"].get("failed", 0) == 0 and result["iterations"]["succeeded"] > 1
