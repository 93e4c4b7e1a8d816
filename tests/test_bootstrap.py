"""The documented commands run as written from a shell whose `python3` is the system Python."""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import yaml

from bootstrap import ALLOCATOR_ENV, LEAN_FLAGS
from testbed.agents import AgentSim
from testbed.devserver import free_port
from testbed.helpers import eventually, files_of_type, start_pipeline, system_python_first
from testbed.processes import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
EXIT_CONFIG = 6
EXIT_UNREACHABLE = 5


def shell(command: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_the_first_python3_lacks_our_packages(env, tmp_path):
    bare = system_python_first(env, tmp_path)
    probe = shell("python3 -c 'import temporalio'", bare)
    assert probe.returncode != 0 and "No module named 'temporalio'" in probe.stderr


async def test_stage_instruction_runs_as_written(client, cfg, dirs, env, worker, tmp_path):
    bare = system_python_first(env, tmp_path)
    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "as-written")
        prefab = (await eventually(lambda: files_of_type(dirs["tasks"], "build_prefab")))[0]
        path = next(p for p in dirs["tasks"].glob("*.yml")
                    if yaml.safe_load(p.read_text())["id"] == prefab["id"])
        instruction = prefab["payload"]["instruction"]
        command = instruction.split("When done, run: ", 1)[1].split(" success ", 1)[0]
        command = command.replace("<path of this task file>", shlex.quote(str(path)))
        done = shell(f"{command} success 'scaffolded'", bare, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "activity completed: success"
        await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
        # The agents' guide's own form: python3 <repo>/complete_activity.py, system python3.
        agents_form = shell(f"python3 {ROOT}/complete_activity.py --task-file "
                            f"{shlex.quote(str(path))} success again", bare, cwd=tmp_path)
        assert agents_form.returncode == 4, agents_form.stderr  # already completed: not found
        assert len(agents_form.stderr.strip().splitlines()) == 1
        await handle.terminate("test over")


async def test_buildctl_runs_as_written(client, env, tmp_path):
    bare = system_python_first(env, tmp_path)
    listed = shell("./buildctl.py --json list --limit 1", bare)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith('{"workflows": ')


def environment_of(pid: int) -> dict[str, str]:
    """The environment PID was started with (after its last exec)."""
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().partition("=")[::2] for pair in pairs if pair)


async def test_the_worker_runs_lean_however_it_is_started(env, tmp_path):
    """`python3 worker.py` from a shell whose python3 is the system one, the venv's python, or
    that python with -OO already: either way the worker runs on the venv's interpreter with
    LEAN_FLAGS (docstrings and column tables left out) and glibc's allocator environment set
    before it started (glibc reads it only then); a value the launcher gave stays."""
    bare = {name: value for name, value in system_python_first(env, tmp_path).items()
            if not name.startswith("MALLOC_")}
    venv_python = str(ROOT / ".venv" / "bin" / "python")
    starts = [("python3 worker.py", {}), (f"{venv_python} worker.py", {}),
              (f"{venv_python} -OO worker.py", {}),
              (f"{venv_python} worker.py", {"MALLOC_ARENA_MAX": "4"})]
    for index, (command, given) in enumerate(starts):
        worker = WorkerProcess(bare, tmp_path / f"worker-{index}.log")
        with worker.log.open("wb") as log:
            worker.process = subprocess.Popen(["bash", "-c", f"exec {command}"],
                                              env={**bare, **given}, cwd=ROOT, stdout=log,
                                              stderr=subprocess.STDOUT)
        try:
            await worker.wait_event("worker_started")
            arguments = Path(f"/proc/{worker.process.pid}/cmdline").read_bytes().split(b"\0")
            assert [part.decode() for part in arguments[:4]] == [venv_python, *LEAN_FLAGS], \
                command
            started_with = environment_of(worker.process.pid)
            assert {name: started_with.get(name) for name in ALLOCATOR_ENV} == \
                {**ALLOCATOR_ENV, **given}, command
        finally:
            await worker.stop()


def test_not_set_up_is_one_line_and_exit_6(env, tmp_path):
    copy = tmp_path / "checkout"
    listing = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    files = subprocess.run(listing, cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    bare = system_python_first(env, tmp_path)
    for command in ("python3 complete_activity.py --task-file x.yml success done",
                    "./buildctl.py list", "python3 worker.py"):
        ran = shell(command, bare, cwd=copy)
        assert ran.returncode == EXIT_CONFIG, (command, ran.stderr)
        lines = ran.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in ran.stderr, ran.stderr
        assert "no module 'temporalio'" in lines[0]
        assert f"{copy}/scripts/setup.sh" in lines[0]
    helped = shell("python3 complete_activity.py --help", bare, cwd=copy)  # needs no packages
    assert helped.returncode == 0 and helped.stdout.startswith("usage: "), helped.stderr


CLOUD_MESSAGES = "temporalio.api.cloud.cloudservice.v1.request_response_pb2"
MANAGER_POOL = "multiprocessing.pool"  # imported by multiprocessing.managers as it runs


def test_the_worker_runs_without_what_it_never_uses(env):
    """The SDK's optional Python gRPC stubs (8 MB of RSS), Temporal Cloud's messages and the
    multiprocessing manager (0.6 MB) stay out of the worker, also once its Worker is built (the
    SDK's default build id would read every loaded module); grpc stays importable for an OTLP
    exporter, the others load on use."""
    import sys

    code = f"""if True:
        import asyncio, sys, worker
        from config import load_config
        from connection.client import connect
        async def built():
            config = load_config()
            await worker.build_worker(await connect(config.client), config)
        asyncio.run(built())
        print(sys.modules.get('grpc') is not None, {CLOUD_MESSAGES!r} in sys.modules,
              {MANAGER_POOL!r} in sys.modules)
        import grpc; print(grpc.__name__)
        from temporalio.api.cloud.cloudservice.v1 import GetUsersRequest
        print(GetUsersRequest.DESCRIPTOR.full_name)
        from multiprocessing.managers import SyncManager
        print(SyncManager.__name__, {MANAGER_POOL!r} in sys.modules)"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "False", "grpc",
                                     "temporal.api.cloud.cloudservice.v1.GetUsersRequest",
                                     "SyncManager", "True"]


def test_the_agents_cli_connects_without_what_it_never_uses(env, tmp_path):
    """As agents run it (python3, a token, no server listening): the SDK is imported and the
    connection refused, with neither grpcio's package nor Cloud's messages loaded."""
    bare = system_python_first(env, tmp_path)
    bare["TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"
    bare.pop("TEMPORAL_HTTP_ADDRESS", None)
    bare["AGENT_TRANSPORT"] = "grpc"  # the SDK's path (HTTP loads no SDK: test_http_handoff)
    bare["PYTHONPROFILEIMPORTTIME"] = "1"  # carried into the venv interpreter it hops to
    token = base64.b64encode(b"not a real task token, but base64").decode()
    ran = shell(f"python3 {ROOT}/complete_activity.py {token} success done",
                bare, cwd=tmp_path)
    assert ran.returncode == EXIT_UNREACHABLE, ran.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in ran.stderr.splitlines()
                if line.startswith("import time:")}
    assert "temporalio.service" in imported
    assert not [name for name in imported if name.startswith("grpc.")]  # `grpc` is tried
    assert CLOUD_MESSAGES not in imported


async def test_the_worker_says_in_one_plain_line_that_it_is_ready(env, server, tmp_path):
    """Beside the JSON logs on stdout (which stay pure JSON): one human line on stderr naming
    the role, task queue, address (and where it came from) and namespace."""
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(["python3", "worker.py"], cwd=ROOT, stdout=stdout,
                                   stderr=stderr, env=system_python_first(env, tmp_path))
    try:
        said = await eventually(lambda: [line for line in err.read_text().splitlines()
                                         if line.startswith("worker ready:")], 60)
        assert said == [f"worker ready: role main, task queue {env['TASK_QUEUE']}, Temporal at "
                        f"{server.address} (from TEMPORAL_ADDRESS), namespace default"]
        assert all(json.loads(line) for line in out.read_text().splitlines())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
