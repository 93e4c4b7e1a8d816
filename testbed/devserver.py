"""Start and stop a real Temporal CLI dev server (subprocess) for the tests."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVISION_HINT = ("the Temporal CLI is required for the tests: run ./scripts/test.sh (it builds "
                  "v1.5.1 with Go) or install it from https://docs.temporal.io/cli#install")


def provisioned(variable: str, script: str, hint: str) -> str:
    """A program's path: VARIABLE if it names one, else what scripts/SCRIPT finds or builds;
    a failure says HINT and what the script said."""
    path = os.environ.get(variable)
    if path and os.access(path, os.X_OK):
        return path
    result = subprocess.run([str(ROOT / "scripts" / script)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{hint}\n{result.stderr.strip()}")
    return result.stdout.strip()


def temporal_cli() -> str:
    """Path of the CLI, provisioning it through the project script when needed."""
    return provisioned("TEMPORAL_CLI", "ensure-temporal.sh", PROVISION_HINT)


_HANDED_OUT: set[int] = set()
_RANDOM = random.Random()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    Outgoing connections take their local port from the ephemeral range, so a port chosen
    there can be taken between this check and the server's own bind (a CI run lost a dev
    server that way). Ports handed out once are not handed out again in this process.
    """
    high = _ephemeral_low()
    for _ in range(200):
        port = _RANDOM.randrange(10000, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free loopback port found between 10000 and {high}")


def port_answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_answers(port):
            return
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
    started_once: bool = False
    log_offset: int = 0
    http_port: int = 0  # the frontend's HTTP API (0: a free port is chosen)

    def __post_init__(self) -> None:
        self.http_port = self.http_port or free_port()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self, attempts: int = 3, timeout: float = 60.0) -> None:
        """Start and wait for the frontend; retry on a lost port race (new UI port, and a new
        frontend port unless a restart must keep the address clients already use)."""
        for attempt in range(1, attempts + 1):
            if self._launch(timeout):
                self.started_once = True
                return
            tail = self._log_tail()
            if attempt == attempts or "address already in use" not in tail:
                raise RuntimeError(f"dev server on port {self.port} did not start: {tail}")
            self.ui_port = free_port()
            if not self.started_once:
                self.port, self.http_port = free_port(), free_port()

    def _launch(self, timeout: float) -> bool:
        """True once the frontend and the Web UI answer; False if the process exited first."""
        args = [self.cli, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
                "--ui-port", str(self.ui_port), "--http-port", str(self.http_port),
                "--db-filename", str(self.db),
                "--log-level", "error", "--search-attribute", "BuildName=Keyword",
                "--search-attribute", "TargetAgent=Keyword",
                "--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true"]
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_answers(self.port) and port_answers(self.ui_port):
                return True
            if self.process.poll() is not None:
                self.process = None
                return False
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"dev server: nothing answered on port {self.port} within "
                           f"{timeout:g}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        """The last lines this launch wrote to the server log."""
        try:
            with open(self.log, "rb") as log:
                log.seek(self.log_offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return "(no server log)"
        return " | ".join(text.strip().splitlines()[-3:]) or "(server log empty)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
