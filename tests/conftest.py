"""Shared fixtures: one real dev server per session, isolated directories and config per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

# hypothesis is imported early on purpose: its plugin's late import at the end of a run can
# hit a CPython 3.11 AST recursion-counter bug once the workflow sandbox has run.
import hypothesis  # noqa: F401
import pytest
import pytest_asyncio
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from config import WorkerConfig, load_config
from logs import JsonFormatter
from taskdir import load
from tests.devserver import DevServer, free_port, temporal_cli
from worker import build_worker


@pytest.fixture(scope="session")
def cli_path() -> str:
    try:
        return temporal_cli()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def server(cli_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    base = tmp_path_factory.mktemp("devserver")
    dev = DevServer(cli_path, base / "temporal.db", free_port(), free_port(),
                    base / "server.log")
    dev.start()
    yield dev
    dev.stop()


async def connect_client(address: str, attempts: int = 100,
                         namespace: str = "default") -> Client:
    """Connect once the namespace answers (the port opens a little earlier)."""
    for _ in range(attempts):
        try:
            client = await Client.connect(address, namespace=namespace,
                                          data_converter=pydantic_data_converter)
            await client.workflow_service.get_system_info(GetSystemInfoRequest())
            return client
        except Exception:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"dev server at {address} never became ready")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(server: DevServer) -> Client:
    return await connect_client(server.address)


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("home", "tasks", "audit", "summaries")}
    paths["home"].mkdir()
    monkeypatch.setenv("HOME", str(paths["home"]))
    return paths


def worker_env(server: DevServer, dirs: dict[str, Path], **overrides: str) -> dict[str, str]:
    """The environment a worker under test runs with (also used for subprocess workers)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(dirs["home"]),
        "TEMPORAL_ADDRESS": server.address,
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


@pytest.fixture
def env(server: DevServer, dirs: dict[str, Path]) -> dict[str, str]:
    return worker_env(server, dirs)


@pytest.fixture
def cfg(env: dict[str, str]) -> WorkerConfig:
    return load_config(env)


@contextlib.asynccontextmanager
async def running_worker(client: Client, config: WorkerConfig) -> AsyncIterator[Any]:
    """An in-process worker (the same build_worker as worker.py) with its sweeper."""
    worker, sweeper, _ = await build_worker(client, config)
    async with worker:
        task = asyncio.create_task(sweeper.run_forever())
        try:
            yield worker
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest_asyncio.fixture(loop_scope="session")
async def worker(client: Client, cfg: WorkerConfig) -> AsyncIterator[Any]:
    async with running_worker(client, cfg) as running:
        yield running


@pytest.fixture(autouse=True)
def no_secrets_in_logs(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
                       ) -> Iterator[None]:
    """After every test: no task token written to its task dir appears in any log record of
    this process, nor in any *.log file the test's processes wrote (worker, pm2, nginx)."""
    caplog.set_level("DEBUG")
    if "dirs" not in request.fixturenames:
        yield
        return
    task_dir = request.getfixturevalue("dirs")["tasks"]
    test_dir = request.getfixturevalue("tmp_path")
    yield
    tokens = set()
    for path in task_dir.rglob("*.yml") if task_dir.exists() else []:
        with contextlib.suppress(Exception):
            token = load(path)["payload"].get("task_token")
            if token:
                tokens.add(token)
    formatter = JsonFormatter()
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    texts = [formatter.format(record) for record in records]
    texts += [path.read_text(errors="replace") for path in test_dir.rglob("*.log")]
    text = "\n".join(texts)
    leaked = [token for token in tokens if token in text or token[:40] in text]
    assert not leaked, f"{len(leaked)} task token(s) appeared in the logs"
