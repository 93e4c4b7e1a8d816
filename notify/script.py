"""Matrix through the operator's script: `SCRIPT ROOM MESSAGE`, PM2's IPC variables removed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

PM2_IPC_VARS = ("NODE_CHANNEL_FD", "NODE_CHANNEL_SERIALIZATION_MODE", "NODE_UNIQUE_ID")


def child_env() -> dict[str, str]:
    """Our environment without the variables that make a child join PM2's IPC channel."""
    return {k: v for k, v in os.environ.items() if k not in PM2_IPC_VARS}


class ScriptNotifier:
    """Runs SEND_MATRIX_SCRIPT with a 15 s limit."""

    name = "script"

    def __init__(self, script: Path, room: str, timeout: float = 15.0) -> None:
        self.script = script
        self.room = room
        self.timeout = timeout

    async def send(self, title: str, message: str) -> None:
        process = await asyncio.create_subprocess_exec(
            str(self.script), self.room, f"{title}\n{message}",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=child_env(), start_new_session=True,
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the script and anything it started
            await process.wait()
            raise RuntimeError(f"{self.script} did not finish within {self.timeout:g}s") from None
        if process.returncode != 0:
            detail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"{self.script} exited {process.returncode}: {detail[0][:200]}")
