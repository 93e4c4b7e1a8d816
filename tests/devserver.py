"""Start and stop a real Temporal CLI dev server (subprocess) for the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVISION_HINT = ("the Temporal CLI is required for the tests: run ./scripts/test.sh (it builds "
                  "v1.5.1 with Go) or install it from https://docs.temporal.io/cli#install")


def temporal_cli() -> str:
    """Path of the CLI, provisioning it through the project script when needed."""
    path = os.environ.get("TEMPORAL_CLI")
    if path and os.access(path, os.X_OK):
        return path
    result = subprocess.run([str(ROOT / "scripts" / "ensure-temporal.sh")],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{PROVISION_HINT}\n{result.stderr.strip()}")
    return result.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered on port {port} within {timeout:g}s")


@dataclass
class DevServer:
    """One dev server process with its SQLite file."""

    cli: str
    db: Path
    port: int
    ui_port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [self.cli, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
                "--ui-port", str(self.ui_port), "--db-filename", str(self.db),
                "--log-level", "error", "--search-attribute", "BuildName=Keyword",
                "--search-attribute", "TargetAgent=Keyword",
                "--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true"]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
