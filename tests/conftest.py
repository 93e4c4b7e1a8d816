"""Shared fixtures: one real dev server per session, isolated directories and config per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

# hypothesis is imported early on purpose: its plugin's late import at the end of a run can
# hit a CPython 3.11 AST recursion-counter bug once the workflow sandbox has run.
import hypothesis  # noqa: F401
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from config import WorkerConfig, load_config
from logs import JsonFormatter
from testbed.cluster import TemporalCluster
from testbed.devserver import DevServer, free_port, temporal_cli
from testbed.helpers import connect_client, running_worker, tokens_in, worker_env
from testbed.jaeger import Jaeger, jaeger_bin
from testbed.timeskipping import start_time_skipping
from tests.markers import mark_kinds


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test unit, server or slow (tests/markers.py) so `-m unit` runs no server."""
    mark_kinds(items)


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


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(server: DevServer) -> Client:
    return await connect_client(server.address)


@pytest.fixture(scope="session")
def cluster(cli_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalCluster]:
    """The real server on PostgreSQL, two history/matching nodes (started on first use)."""
    try:
        bed = TemporalCluster(cli_path, tmp_path_factory.mktemp("cluster"))
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    bed.start()
    yield bed
    bed.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def cluster_client(cluster: TemporalCluster) -> Client:
    return await connect_client(cluster.address)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's Java test server with time-skipping (one per test module)."""
    try:
        env = await start_time_skipping()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def jaeger_path() -> str:
    """Found (or built) once, before any test points HOME, and so the cache, elsewhere."""
    try:
        return jaeger_bin()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture
def jaeger(jaeger_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """A real Jaeger of the test's own on free ports, its in-memory store empty."""
    backend = Jaeger(jaeger_path, tmp_path_factory.mktemp("jaeger"))
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("home", "tasks", "audit", "summaries")}
    paths["home"].mkdir()
    monkeypatch.setenv("HOME", str(paths["home"]))
    return paths


@pytest.fixture
def env(server: DevServer, dirs: dict[str, Path]) -> dict[str, str]:
    return worker_env(server, dirs)


@pytest.fixture
def cfg(env: dict[str, str]) -> WorkerConfig:
    return load_config(env)


@pytest_asyncio.fixture(loop_scope="session")
async def worker(client: Client, cfg: WorkerConfig) -> AsyncIterator[Any]:
    async with running_worker(client, cfg) as running:
        yield running


@pytest.fixture(autouse=True)
def no_secrets_in_logs(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
                       ) -> Iterator[None]:
    """After every test: no task token written to its task dirs (every simulated host's)
    appears in any log record of this process, nor in any *.log file the test's processes
    wrote (worker, pm2, nginx)."""
    caplog.set_level("DEBUG")
    if "dirs" not in request.fixturenames:
        yield
        return
    test_dir = request.getfixturevalue("tmp_path")
    yield
    tokens, dispatched = tokens_in(test_dir)
    assert tokens or not dispatched, "stage files were written but no task token was found"
    formatter = JsonFormatter()
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    texts = [formatter.format(record) for record in records]
    texts += [path.read_text(errors="replace") for path in test_dir.rglob("*.log")]
    text = "\n".join(texts)
    leaked = sum(1 for token in tokens if token in text or token[:40] in text)
    assert leaked == 0, f"{leaked} task token(s) appeared in the logs"  # counted, never shown
