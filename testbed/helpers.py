"""Helpers shared by the tests and the benchmarks: connect, configure and run a worker, start
pipelines, wait for conditions, read task files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import WorkflowRunner

from config import WorkerConfig
from connection.converter import DATA_CONVERTER
from models import BuildPipelineInput, BuildPipelineResult, Progress
from safeio.writing import write_private
from taskdir import UNREADABLE, TaskDirectory, dump, file_name, load, utc_now
from testbed.devserver import DevServer
from worker import WORKFLOW_RUNNER, build_worker
from workflows.base import BuildWorkflowBase

T = TypeVar("T")


def make_origin(task_dir: Path, status: str = "in-progress") -> str:
    """Write an originating task-queue task (as the task-queue tooling would); return its id."""
    task_id = str(uuid.uuid4())
    now = utc_now()
    document = {
        "id": task_id, "created": now, "source_agent": "operator", "target_agent": "dev",
        "task_type": "build", "risk_level": "low", "requires_approval": False,
        "workflow_mode": "semi-auto", "status": status, "summary": "Build request",
        "ttl_days": 30, "payload": {"description": "Build request", "context_refs": [],
                                    "priority": "normal"},
        "result": {"output": None, "completed_by": None, "completed_at": None},
        "history": [{"timestamp": now, "status": status, "actor": "operator",
                     "note": "submitted"}]}
    write_private(task_dir / file_name(task_id, now), dump(document))
    return task_id


async def start_pipeline(client: Client, task_queue: str, task_dir: Path,
                         build_name: str = "demo", **kwargs: Any) -> WorkflowHandle[Any, Any]:
    task_id = kwargs.pop("task_id", None) or make_origin(task_dir)
    params = BuildPipelineInput(build_name=build_name, plan_path=f"/plans/{build_name}.md",
                                task_id=task_id, target_agent=kwargs.pop("agent", "dev"))
    return await client.start_workflow(
        "BuildPipelineWorkflow", params, id=f"{build_name}-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue, result_type=BuildPipelineResult, **kwargs)


async def eventually(check: Callable[[], Awaitable[T] | T], timeout: float = 30.0,
                     interval: float = 0.05) -> T:
    """Poll CHECK until it returns something truthy; fail after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last) or isinstance(last, Awaitable):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:g}s (last value {last!r})")


def task_files(task_dir: Path, strict: bool = False) -> list[dict[str, Any]]:
    """Parsed task files. Unreadable ones (tests plant some) are skipped unless STRICT: then
    any file that is not a readable mapping fails the test, named, so a count of the files
    (one per stage) cannot miss an unreadable duplicate."""
    documents = []
    for path in sorted(task_dir.glob("*.yml")):
        try:
            document = load(path)
        except UNREADABLE as err:
            if strict:
                raise AssertionError(f"unreadable task file {path.name}: {err}") from None
            continue
        if isinstance(document, dict):
            documents.append(document)
        elif strict:
            raise AssertionError(f"task file {path.name} is not a mapping")
    return documents


def files_of_type(task_dir: Path, task_type: str) -> list[dict[str, Any]]:
    return [d for d in task_files(task_dir) if d.get("task_type") == task_type]


def stage_file(task_dir: Path, task_type: str) -> Path | None:
    """The path of the (first) task file of TASK_TYPE in TASK_DIR, None while there is none."""
    for path in sorted(task_dir.glob("*.yml")):
        try:
            document = load(path)
        except UNREADABLE:
            continue
        if document.get("task_type") == task_type:
            return path
    return None


async def connect_client(address: str, attempts: int = 100,
                         namespace: str = "default") -> Client:
    """Connect once the namespace answers (the port opens a little earlier)."""
    for _ in range(attempts):
        try:
            client = await Client.connect(address, namespace=namespace,
                                          data_converter=DATA_CONVERTER)
            await client.workflow_service.get_system_info(GetSystemInfoRequest())
            return client
        except Exception:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"dev server at {address} never became ready")


def worker_env(server: DevServer, dirs: dict[str, Path], **overrides: str) -> dict[str, str]:
    """The environment a worker under test runs with (also used for subprocess workers)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(dirs["home"]),
        "TEMPORAL_ADDRESS": server.address,
        "TEMPORAL_HTTP_ADDRESS": server.http_address,
        "TEMPORAL_NAMESPACE": "default",
        "TASK_QUEUE": f"test-{uuid.uuid4().hex[:10]}",
        "TASK_QUEUE_DIR": str(dirs["tasks"]),
        "TEMPORAL_AUDIT_DIR": str(dirs["audit"]),
        "SUMMARY_DIR": str(dirs["summaries"]),
        "SEND_MATRIX_SCRIPT": str(dirs["home"] / "send-matrix.sh"),
        "TRIAGE_RETRY_INITIAL": "0.2s",
        "TRIAGE_RETRY_MAX": "1s",
        "BLOCK_CHECK_INTERVAL": "0.5s",
        "TEMPORAL_CONFIG_FILE": str(dirs["home"] / "no-temporal-config.toml"),
    }
    env.update(overrides)
    return env


def quiet_notifier(home: Path) -> None:
    """A SEND_MATRIX_SCRIPT in HOME that accepts every notification and says nothing."""
    script = home / "send-matrix.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)


def host_dirs(base: Path, host: str) -> dict[str, Path]:
    """A simulated machine's own HOME, task, audit and summary directories under BASE."""
    paths = {name: base / host / name for name in ("home", "tasks", "audit", "summaries")}
    paths["home"].mkdir(parents=True, exist_ok=True)
    return paths


def host_worker_env(server: DevServer, dirs: dict[str, Path], queue: str,
                    workflow_queue: str, **overrides: str) -> dict[str, str]:
    """The environment of a host worker (WORKER_ROLE=host) serving QUEUE from DIRS."""
    return worker_env(server, dirs, TASK_QUEUE=queue, WORKER_ROLE="host",
                      WORKFLOW_TASK_QUEUE=workflow_queue, **overrides)


@contextlib.asynccontextmanager
async def running_worker(client: Client, config: WorkerConfig,
                         runner: WorkflowRunner = WORKFLOW_RUNNER) -> AsyncIterator[Any]:
    """An in-process worker (the same build_worker as worker.py) with its sweeper; RUNNER is
    the workflow runner (production's unless a test passes the sandbox)."""
    worker, sweeper, _ = await build_worker(client, config, runner=runner)
    async with worker:
        task = asyncio.create_task(sweeper.run_forever())
        try:
            yield worker
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def system_python_first(env: dict[str, str], base: Path) -> dict[str, str]:
    """ENV with a bare interpreter (no packages of ours) as the first `python3` on PATH, as a
    shell whose `python3` is the system Python has it."""
    bare = base / "system-python"
    if not (bare / "bin" / "python3").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    return {**env, "PATH": f"{bare / 'bin'}:{env.get('PATH', os.environ.get('PATH', ''))}"}


@contextlib.asynccontextmanager
async def worker_without_sweep(client: Client, config: WorkerConfig) -> AsyncIterator[Any]:
    """An in-process worker whose sweeper the test runs itself (pass by pass)."""
    worker, sweeper, _ = await build_worker(client, config)
    async with worker:
        yield sweeper


_TOKEN = re.compile(rb"^\s*task_token:\s*['\"]?([A-Za-z0-9+/=]{4,})", re.M)


def tokens_in(base: Path) -> tuple[set[str], bool]:
    """Every task token in the task files under BASE, read as raw text (no parser that could
    fail quietly), and whether any stage file of ours is there at all. Planted junk (FIFOs,
    links, huge files) is skipped by what it is, never by an error swallowed."""
    tokens: set[str] = set()
    dispatched = False
    for path in base.rglob("*.yml"):
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > 4 * 1024 * 1024:
            continue
        raw = path.read_bytes()
        found = {match.decode() for match in _TOKEN.findall(raw)}
        tokens |= found
        dispatched = dispatched or (b"source_agent: temporal-worker" in raw
                                    and b"task_token:" in raw)
    return tokens, dispatched


def file_status(task_dir: Path, task_id: str) -> str | None:
    """The `status` TASK_ID's file says, credible or not (None: no single readable file)."""
    return TaskDirectory(task_dir).read_decision(task_id, credible_only=False).status


async def progress_of(handle: WorkflowHandle) -> Progress:
    """The run's `progress` query, by typed reference."""
    return await handle.query(BuildWorkflowBase.progress)


async def current_details(handle: WorkflowHandle) -> str:
    """What the Web UI shows as the run's Current Details (Markdown)."""
    from temporalio.api.sdk.v1 import WorkflowMetadata

    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


async def reaches_stage(handle: WorkflowHandle, stage: str, timeout: float = 30.0) -> Progress:
    """Poll the run's progress until it is at STAGE; its progress then."""
    async def there() -> Progress | None:
        progress = await progress_of(handle)
        return progress if progress.stage == stage else None

    return await eventually(there, timeout)


BUILDCTL = str(Path(__file__).resolve().parent.parent / "buildctl.py")


def plan_file(dirs: dict[str, Path], name: str = "plan") -> str:
    """A readable plan file (start refuses a --plan-path it cannot read); its path."""
    path = dirs["home"] / f"{name}.md"
    path.write_text(f"# {name}\n")
    return str(path)


async def buildctl(env: dict[str, str], *args: str | bytes) -> tuple[int, str, str]:
    """Run the operators' CLI as they do; its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, BUILDCTL, *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()

