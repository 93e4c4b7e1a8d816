"""The real pm2 (npm) runs ecosystem.config.js: online, polling, restarted after a kill,
stopped gracefully."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from bootstrap import ALLOCATOR_ENV
from config import load_config
from testbed.agents import AgentSim
from testbed.helpers import (
    eventually,
    files_of_type,
    host_dirs,
    host_worker_env,
    running_worker,
    start_pipeline,
    worker_env,
)

ROOT = Path(__file__).resolve().parent.parent
APP = "temporal-build-worker"


def pm2_binary() -> str:
    path = os.environ.get("PM2_BIN")
    if path and os.access(path, os.X_OK):
        return path
    result = subprocess.run([str(ROOT / "scripts" / "ensure-pm2.sh")], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"pm2 is required: {result.stderr.strip()}", pytrace=False)
    return result.stdout.strip()


@pytest.fixture
def pm2(tmp_path, server, dirs):
    env = {**worker_env(server, dirs), "PM2_HOME": str(tmp_path / "pm2home")}
    binary = pm2_binary()

    def run(*args: str) -> str:
        return subprocess.run([binary, *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, check=True, timeout=120).stdout

    yield run, env
    subprocess.run([binary, "kill"], env=env, capture_output=True, timeout=60, check=False)


def app_state(run, name: str = APP) -> dict:
    apps = json.loads(run("jlist"))
    app = next(a for a in apps if a["name"] == name)
    return {"status": app["pm2_env"]["status"], "pid": app["pid"],
            "restarts": app["pm2_env"]["restart_time"],
            "out": app["pm2_env"]["pm_out_log_path"]}


async def test_pm2_runs_restarts_and_stops_the_worker(client, dirs, pm2):
    run, env = pm2
    run("start", "ecosystem.config.js")
    first = await eventually(lambda: (s := app_state(run))["status"] == "online" and s["pid"]
                             and s, 60)
    out_log = Path(first["out"])
    await eventually(lambda: out_log.exists() and "worker_started" in out_log.read_text(), 60)
    async with AgentSim(dirs["tasks"], env, {"build_plan": lambda d, p: None}):
        handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "pm2")
        await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"), 60)
    os.kill(first["pid"], signal.SIGKILL)
    restarted = await eventually(
        lambda: (s := app_state(run))["status"] == "online" and s["pid"]
        and s["pid"] != first["pid"] and s, 60)
    assert restarted["restarts"] >= 1
    await eventually(lambda: out_log.read_text().count("worker_started") >= 2, 60)
    run("stop", APP)
    await eventually(lambda: "worker_stopped" in out_log.read_text(), 60)
    assert app_state(run)["status"] == "stopped"
    await handle.terminate("done")


async def test_pm2_runs_a_host_worker(client, server, dirs, tmp_path):
    """`WORKER_ROLE=host TASK_QUEUE=... pm2 start ecosystem.config.js` on an agent host: the
    host worker writes the routed stage's file into that host's directory."""
    main_queue = f"main-{os.getpid()}-{tmp_path.name[-12:]}"
    host_queue = f"{main_queue}-dev"
    place = host_dirs(tmp_path, "dev")
    env = {**host_worker_env(server, place, host_queue, main_queue),
           "PM2_HOME": str(tmp_path / "pm2home")}
    binary = pm2_binary()

    def run(*args: str) -> str:
        return subprocess.run([binary, *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, check=True, timeout=120).stdout

    main_env = worker_env(server, dirs, TASK_QUEUE=main_queue, AGENT_QUEUES=f"dev={host_queue}")
    try:
        run("start", "ecosystem.config.js")
        name = f"temporal-build-worker@{host_queue}"
        state = await eventually(lambda: (s := app_state(run, name))["status"] == "online"
                                 and s, 60)
        out_log = Path(state["out"])
        await eventually(lambda: out_log.exists() and "worker_started" in out_log.read_text(),
                         60)
        async with running_worker(client, load_config(main_env)), \
                AgentSim(dirs["tasks"], main_env), \
                AgentSim(place["tasks"], env, {"build_plan": lambda d, p: None}):
            handle = await start_pipeline(client, main_queue, dirs["tasks"], "pm2-host")
            await eventually(lambda: files_of_type(place["tasks"], "build_plan"), 60)
            assert files_of_type(dirs["tasks"], "build_plan") == []
            await handle.terminate("done")
        assert '"role": "host"' in out_log.read_text()
    finally:
        subprocess.run([binary, "kill"], env=env, capture_output=True, timeout=60, check=False)


def test_ecosystem_file_has_the_contract():
    text = (ROOT / "ecosystem.config.js").read_text()
    for needle in ('name: "temporal-build-worker"', 'script: "worker.py"', "autorestart: true",
                   "watch: false", "max_restarts: 10", "exp_backoff_restart_delay",
                   'PYTHONUNBUFFERED: "1"', "MATRIX_ROOM", '".venv", "bin", "python"'):
        assert needle in text
    assert "/home/" not in text and "/root" not in text


@pytest.mark.server
@pytest.mark.parametrize("venvs,chosen", [([".venv"], ".venv"), (["venv"], "venv"),
                                          ([".venv", "venv"], ".venv")])
def test_ecosystem_interpreter_is_dot_venv_else_venv(tmp_path, venvs, chosen):
    """An in-place upgrade of a v0.5 checkout (its venv is `venv/`) keeps working."""
    (tmp_path / "ecosystem.config.js").write_text((ROOT / "ecosystem.config.js").read_text())
    for name in venvs:
        (tmp_path / name / "bin").mkdir(parents=True)
        (tmp_path / name / "bin" / "python").touch()
    node = subprocess.run(
        ["node", "-e", "process.stdout.write(require(process.argv[1]).apps[0].interpreter)",
         str(tmp_path / "ecosystem.config.js")], capture_output=True, text=True, check=True)
    assert node.stdout == str(tmp_path / chosen / "bin" / "python")


@pytest.mark.server
@pytest.mark.parametrize("queue", ["", "helm-build"])
def test_ecosystem_refuses_a_host_role_without_a_queue_of_its_own(queue):
    """Node evaluates the process file as pm2 does: a host role on the workflow queue (or
    none) is refused with one line naming the fix."""
    node = shutil.which("node")
    assert node, "node is required (scripts/ensure-pm2.sh installs it with npm)"
    ecosystem = str(ROOT / "ecosystem.config.js")
    ran = subprocess.run([node, "-e", "require(process.argv[1])", ecosystem],
                         env={**os.environ, "WORKER_ROLE": "host", "TASK_QUEUE": queue},
                         capture_output=True, text=True, timeout=30)
    assert ran.returncode != 0
    assert "WORKER_ROLE=host needs the host's own TASK_QUEUE" in ran.stderr
    fine = subprocess.run([node, "-e", "console.log(require(process.argv[1]).apps[0].name)",
                           ecosystem],
                          env={**os.environ, "WORKER_ROLE": "host", "TASK_QUEUE": "helm-build-x"},
                          capture_output=True, text=True, timeout=30)
    assert fine.stdout.strip() == "temporal-build-worker@helm-build-x"


@pytest.mark.server
@pytest.mark.parametrize("role", [{}, {"WORKER_ROLE": "host", "TASK_QUEUE": "helm-build-x"}])
def test_the_launchers_set_the_workers_allocator_environment(role):
    """glibc reads its allocator variables only as a process starts: the process file (either
    role) and run.sh give the worker bootstrap's ALLOCATOR_ENV, keeping a value already set."""
    node = shutil.which("node")
    assert node, "node is required (scripts/ensure-pm2.sh installs it with npm)"
    unset = {name: value for name, value in os.environ.items() if name not in ALLOCATOR_ENV}
    given = {"MALLOC_ARENA_MAX": "4"}
    for outside, expected in (({}, ALLOCATOR_ENV), (given, {**ALLOCATOR_ENV, **given})):
        ran = subprocess.run(
            [node, "-e", "console.log(JSON.stringify(require(process.argv[1]).apps[0].env))",
             str(ROOT / "ecosystem.config.js")], env={**unset, **role, **outside},
            capture_output=True, text=True, timeout=30, check=True)
        app_env = json.loads(ran.stdout)
        assert {name: app_env.get(name) for name in ALLOCATOR_ENV} == expected
    run_sh = (ROOT / "scripts" / "run.sh").read_text()
    for name, value in ALLOCATOR_ENV.items():
        assert f'export {name}="${{{name}:-{value}}}"' in run_sh
