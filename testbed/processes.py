"""worker.py as a real subprocess: start, wait for a log event, stop, kill."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


READY_PREFIX = "worker ready: "  # worker.py's one human line, beside its JSON logs


class WorkerProcess:
    """One worker.py process writing JSON lines to LOG."""

    def __init__(self, env: dict[str, str], log: Path, umask: int = 0o022) -> None:
        self.env = env
        self.log = log
        self.umask = umask
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT,
                                        env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                        umask=self.umask)
        out.close()

    def events(self) -> list[dict[str, Any]]:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                if not line.startswith(READY_PREFIX):  # the one plain line: not an event
                    parsed.append({"event": "<non-json>", "raw": line})
        return parsed

    async def wait_event(self, name: str, count: int = 1, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for e in self.events() if e.get("event") == name) >= count:
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker exited {self.process.returncode} before {name}: "
                                     f"{self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {name} within {timeout:g}s: {self.log.read_text()[-2000:]}")

    async def wait_exit(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self.process is not None and self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("worker did not exit")
            await asyncio.sleep(0.05)
        return self.process.returncode if self.process else -1

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    async def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return await self.wait_exit(30)


@contextlib.asynccontextmanager
async def started_worker(env: dict[str, str], log: Path,
                         umask: int = 0o022) -> AsyncIterator[WorkerProcess]:
    """A worker.py process that has logged worker_started; stopped (SIGTERM) on exit."""
    worker = WorkerProcess(env, log, umask)
    worker.start()
    try:
        await worker.wait_event("worker_started")
        yield worker
    finally:
        await worker.stop()
