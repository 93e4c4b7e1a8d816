"""Temporal's Java test server (time-skipping) for the tests of long durations."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from connection.converter import DATA_CONVERTER

ROOT = Path(__file__).resolve().parent.parent


def test_server_launcher() -> str:
    """The launcher scripts/ensure-test-server.sh resolved (TEMPORAL_TEST_SERVER, else run it)."""
    given = os.environ.get("TEMPORAL_TEST_SERVER")
    if given and os.access(given, os.X_OK):
        return given
    found = subprocess.run([str(ROOT / "scripts" / "ensure-test-server.sh")],
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise RuntimeError(found.stderr.strip().splitlines()[-1] if found.stderr.strip()
                           else "scripts/ensure-test-server.sh failed")
    return found.stdout.strip()


async def start_time_skipping() -> WorkflowEnvironment:
    """The SDK's own time-skipping environment on the Java test server."""
    return await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=test_server_launcher())


def production_env(dirs: dict[str, Path], queue: str) -> dict[str, str]:
    """A worker's environment with every duration at its production default (only the
    directories and the task queue are the test's)."""
    return {"HOME": str(dirs["home"]), "TASK_QUEUE": queue, "TASK_QUEUE_DIR": str(dirs["tasks"]),
            "TEMPORAL_AUDIT_DIR": str(dirs["audit"]), "SUMMARY_DIR": str(dirs["summaries"]),
            "SEND_MATRIX_SCRIPT": str(dirs["home"] / "send-matrix.sh"),
            "TEMPORAL_CONFIG_FILE": str(dirs["home"] / "no-temporal-config.toml"),
            "PATH": os.environ.get("PATH", "")}
