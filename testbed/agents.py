"""Simulated agents: they read task files and complete them exactly as real agents do."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client

from contract import PHASE_FAILED, SUCCESS, completion, decode_token, token_text
from taskdir import UNREADABLE, load

ROOT = Path(__file__).resolve().parent.parent
COMPLETE = str(ROOT / "complete_activity.py")

# A behaviour returns ("success"|"failed", message) or None to leave the task alone.
Behaviour = Callable[[dict[str, Any], Path], "tuple[str, str] | None"]


def _transient(err: Exception) -> bool:
    """Errors an agent would simply retry: the server is briefly unreachable."""
    from temporalio.service import RPCError, RPCStatusCode

    if isinstance(err, ConnectionError):
        return True
    return isinstance(err, RPCError) and err.status in (
        RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)


def triage_writer(audit_dir: Path, triage: dict[str, Any] | str | None) -> Behaviour:
    """Security agent that writes TRIAGE before completing: a mapping gets the documented
    schema's other lists as empty ones (as a well-behaved agent writes them); text is raw."""

    def behave(document: dict[str, Any], _: Path) -> tuple[str, str]:
        out = Path(document["payload"]["output_dir"])
        if triage is not None:
            out.mkdir(parents=True, exist_ok=True)
            text = triage if isinstance(triage, str) else yaml.safe_dump(
                {"blocks": [], "flags": [], "info": [], **triage})
            (out / "triage-output.yml").write_text(text)
        return "success", str(out / "audit.md")

    return behave


def default_behaviour(document: dict[str, Any], path: Path) -> tuple[str, str]:
    if document["task_type"] == "build_closeout":
        return "success", f"/reports/{document['payload']['build_name']}.md"
    return "success", f"{document['task_type']} done"


async def run_cli(*args: str | bytes, stdin: bytes | None = None,
                  env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run complete_activity.py as a subprocess, as an agent would."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, COMPLETE, *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else dict(os.environ))
    out, err = await process.communicate(stdin)
    return process.returncode or 0, out.decode(), err.decode()


@dataclass
class AgentSim:
    """Polls the task dir; completes each new submitted task per its task_type behaviour."""

    task_dir: Path
    env: dict[str, str]
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    client: Client | None = None  # set: complete in-process instead of via the CLI
    handled: set[tuple[str, str]] = field(default_factory=set)
    interval: float = 0.05
    by_file: bool = False  # the CLI as the task file's instruction writes it (--task-file)
    _mtimes: dict[str, int] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)  # exit 4: the stage was already over
    _task: asyncio.Task[None] | None = None
    _owner: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> AgentSim:
        self._owner = asyncio.current_task()
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.errors:  # the test fails here, naming the agent's error, not by a timeout
            raise AssertionError(f"simulated agent error: {self.errors[0]}")

    def _fail(self, message: str) -> None:
        """Record an agent's error and stop the test now (its `async with` names it)."""
        self.errors.append(message)
        if self._owner is not None and not self._owner.done():
            self._owner.cancel(f"simulated agent error: {message}")

    async def _loop(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval)

    async def poll_once(self) -> None:
        if not self.task_dir.is_dir():
            return
        for path in sorted(self.task_dir.glob("*.yml")):
            try:
                mtime = path.stat().st_mtime_ns
                if self._mtimes.get(str(path)) == mtime:
                    continue  # unchanged since we last looked
                document = load(path)  # agents' dirs hold hostile files too
                self._mtimes[str(path)] = mtime
            except UNREADABLE:
                continue
            if not isinstance(document, dict) or document.get("status") != "submitted":
                continue
            token = token_text(document)
            if not token or (str(path), token) in self.handled:
                continue
            behaviour = self.behaviours.get(document["task_type"], default_behaviour)
            try:
                decision = behaviour(document, path)
            except Exception as err:
                self._fail(f"behaviour for {document['task_type']} raised "
                           f"{type(err).__name__}: {err}")
                continue
            if decision is None:
                self._mtimes.pop(str(path), None)  # held back: look again next poll
                continue
            self.handled.add((str(path), token))
            self.seen.append(document)
            try:
                await self.complete(token, *decision, path=path)
            except Exception as err:
                if _transient(err):
                    self.handled.discard((str(path), token))
                    self._mtimes.pop(str(path), None)
                else:
                    self._fail(f"{type(err).__name__}: {err}")

    async def complete(self, token: str, status: str, message: str,
                       path: Path | None = None) -> bool:
        if self.client is not None:
            from temporalio.exceptions import ApplicationError
            from temporalio.service import RPCError, RPCStatusCode

            handle = self.client.get_async_activity_handle(task_token=decode_token(token))
            try:
                if status == SUCCESS:
                    await handle.complete(completion(message))
                else:
                    await handle.fail(ApplicationError(message, type=PHASE_FAILED,
                                                       non_retryable=True))
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                self.not_found.append(str(err))  # the stage was already over
                return False
            return True
        source = ("--task-file", str(path)) if self.by_file and path else (token,)
        code, _, err = await run_cli(*source, status, message, env=self.env)
        if code == 5:  # server unreachable: an agent retries later
            raise ConnectionError(err.strip())
        if code == 4:  # already completed, timed out or cancelled: nothing to do (AGENTS.md)
            self.not_found.append(err.strip())
            return False
        if code != 0:
            self._fail(f"complete_activity.py exited {code}: {err.strip()}")
        return code == 0
