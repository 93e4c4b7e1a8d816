"""complete_activity.py exactly as agents run it: exit codes, token sources, no leaks."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from temporalio.api.enums.v1 import PendingActivityState

from connection.offers import superseded
from connection.task_token import TokenFacts
from testbed.agents import COMPLETE, AgentSim, run_cli
from testbed.helpers import (
    eventually,
    files_of_type,
    progress_of,
    stage_file,
    start_pipeline,
    system_python_first,
)
from workflows.base import BuildWorkflowBase

EXIT_USAGE, EXIT_BAD_TOKEN, EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_BAD_OUTPUT = 2, 3, 4, 5, 7


def assert_one_line(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


@pytest.mark.parametrize("args", [[], ["only-token"], ["dG9r", "done"]])
async def test_usage_errors(args, env):
    code, _out, err = await run_cli(*args, env=env)
    assert code == EXIT_USAGE
    assert "Traceback" not in err
    assert "usage:" in err or "status must be" in err


BAD_TOKENS = {
    "empty": "",
    "whitespace": "   \t ",
    "not-base64": "not*base64!",
    "truncated": base64.b64encode(b"\x0a\x24abc").decode()[:-2] + "=",
    "huge": "A" * 20000,
    "unicode": "tökén",
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
async def test_bad_tokens_exit_3(name, env):
    code, _out, err = await run_cli(BAD_TOKENS[name], "success", "x", env=env)
    assert code == EXIT_BAD_TOKEN, (code, err)
    assert_one_line(err)


async def test_random_bytes_token_rejected_by_server(env):
    token = base64.b64encode(os.urandom(64)).decode()
    code, _, err = await run_cli(token, "success", env=env)
    assert code in (EXIT_BAD_TOKEN, EXIT_NOT_FOUND)
    assert_one_line(err)
    assert token not in err


async def test_unreachable_server_exit_5(env):
    env = {**_without_http(env), "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    token = base64.b64encode(b"whatever-token").decode()
    code, _, err = await run_cli(token, "success", env=env)
    assert code == EXIT_UNREACHABLE
    assert_one_line(err)  # neither HTTP (the port + 10) nor gRPC: said in one line
    assert "127.0.0.1:1 " in err and "HTTP at 127.0.0.1:11" in err and token not in err


async def test_interrupted_while_waiting_on_temporal_is_exit_1_in_one_line(env):
    """AGENTS.md's exit 1 ("anything else"): Ctrl-C while the CLI waits on a server that
    accepted the connection and never answers; one line, no traceback, no token."""
    reached = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepted, never answered
        reached.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    token = base64.b64encode(b"interrupted-token").decode()
    process = await asyncio.create_subprocess_exec(
        sys.executable, COMPLETE, token, "success", "done", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "TEMPORAL_ADDRESS": address, "TEMPORAL_HTTP_ADDRESS": address},
        # as from a terminal: a suite started in the background inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        await asyncio.wait_for(reached.wait(), 60)  # in its call, past start-up
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
        for writer in held:
            writer.close()
        server.close()
    assert process.returncode == 1, err
    assert_one_line(err.decode())
    assert "interrupted" in err.decode() and token not in (out + err).decode()


async def test_config_error_exit_6(env, dirs):
    env = {**env, "VAULT_ADDR": "http://127.0.0.1:1", "VAULT_ROLE_ID": "r",
           "VAULT_SECRET_ID_FILE": str(dirs["home"] / "no-such-secret-id")}
    code, _, err = await run_cli(base64.b64encode(b"t").decode(), "success", env=env)
    assert code == 6
    assert_one_line(err)


async def test_vault_addr_alone_connects_without_tls_and_says_so(env, dirs):
    # v0.5 behaviour: a shell that exports only VAULT_ADDR still reaches Temporal.
    token = base64.b64encode(b"not-a-real-token").decode()
    code, _, err = await run_cli(token, "success", env={**env, "VAULT_ADDR": "http://v:8200"})
    assert code in (EXIT_BAD_TOKEN, EXIT_NOT_FOUND), err  # the server answered
    assert "VAULT_ROLE_ID, VAULT_SECRET_ID_FILE unset" in err


async def test_require_tls_still_refuses_with_partial_vault(env, dirs):
    env = {**env, "VAULT_ADDR": "http://v:8200", "TEMPORAL_REQUIRE_TLS": "1"}
    code, _, err = await run_cli(base64.b64encode(b"t").decode(), "success", env=env)
    assert code == 6
    assert "TEMPORAL_REQUIRE_TLS" in err and "VAULT_ROLE_ID" in err


async def test_stdin_task_file_and_double_completion(client, cfg, dirs, env, worker):
    held = {"build_prefab": lambda d, p: None, "build_plan": lambda d, p: None}
    async with AgentSim(dirs["tasks"], env, held):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "cli-paths")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        token = yaml.safe_load(path.read_text())["payload"]["task_token"]
        code, out, err = await run_cli("--task-file", str(path), "success", "scaffolded",
                                       env=env)
        assert code == 0, err
        assert token not in out + err
        done = yaml.safe_load(path.read_text())  # at once: no longer looks like open work
        assert (done["status"], done["result"]["output"]) == ("completed", "scaffolded")
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        # second completion of the same activity: clear "not found" exit code
        code, _, err = await run_cli("-", "success", stdin=token.encode() + b"\n", env=env)
        assert code == EXIT_NOT_FOUND
        assert_one_line(err)
        assert token not in err
        # durable fact: the implement stage's task file exists (and nobody completes it)
        await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
        await handle.cancel()
        implement = next(p for p in dirs["tasks"].glob("*.yml")
                         if yaml.safe_load(p.read_text())["task_type"] == "build_plan")
        await eventually(lambda: yaml.safe_load(implement.read_text())["status"] == "cancelled")
        # completion after the workflow was cancelled: not found, nothing crashes
        code, _, err = await run_cli("--task-file", str(implement), "success", env=env)
        assert code == EXIT_NOT_FOUND, err


async def test_failed_status_fails_stage(client, cfg, dirs, env, worker):
    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: ("failed", "")}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "cli-failed")
        from temporalio.client import WorkflowFailureError

        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert "Stage prefab failed: Phase failed" in str(caught.value.cause)


async def test_token_presented_to_another_namespace(client, cfg, dirs, env, worker):
    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "other-ns")
        await eventually(lambda: files_of_type(dirs["tasks"], "build_prefab"))
        document = files_of_type(dirs["tasks"], "build_prefab")[0]
        token = document["payload"]["task_token"]
        code, _, err = await run_cli(token, "success", env={**env,
                                                            "TEMPORAL_NAMESPACE": "elsewhere"})
        assert code in (EXIT_BAD_TOKEN, EXIT_NOT_FOUND)
        assert_one_line(err)
        assert token not in err
        # the pipeline is unaffected: the right namespace still completes the stage
        code, _, err = await run_cli(token, "success", "ok", env=env)
        assert code == 0, err
        await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
        await handle.terminate("done")


async def test_hostile_arguments_get_documented_codes_and_send_nothing(client, cfg, dirs, env,
                                                                       worker, tmp_path):
    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "hostile-cli")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        cases = [
            ((f"--task-file={path}",), EXIT_USAGE),
            (("--task-file", str(path)), EXIT_USAGE),
            (("--task-file", str(path), "success", b"built \xff ok"), EXIT_BAD_OUTPUT),
            (("--task-file", str(path), "failed", b"\xed\xa0\x80"), EXIT_BAD_OUTPUT),
            (("--task-file", str(path), "success", *["x" * 100_000] * 3), EXIT_BAD_OUTPUT),
            (("--task-file", str(path), b"succ\xffess"), EXIT_USAGE),
        ]
        for args, expected in cases:
            code, _, err = await run_cli(*args, env=env)
            assert code == expected, (args[-1][:20], err)
            if "usage:" not in err:
                assert_one_line(err)
            assert "Traceback" not in err
        # nothing was sent: the stage is still waiting, and a good completion still works
        assert (await handle.query("progress")).get("stage") == "prefab"
        code, _, err = await run_cli("--task-file", str(path), "success", "done", env=env)
        assert code == 0, err
        await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
        await handle.terminate("done")


AGENT_SLIPS = {  # arguments an agent gets wrong, what it is told, the exit code
    "a task file given as the token": (("{file}", "success", "done"), 3, "--task-file PATH"),
    "no token before the status": (("success", "done"), 2, "no task token before the status"),
    "a mistyped option": (("--taskfile", "{file}", "success"), 2, "unknown option '--taskfile'"),
    "--task-file without its path": (("--task-file",), 2, "needs the task file's path"),
    "no status": (("--task-file", "{file}"), 2, "the status is missing"),
}


@pytest.mark.parametrize("slip", AGENT_SLIPS.values(), ids=AGENT_SLIPS.keys())
async def test_an_agents_slip_is_named_and_sends_nothing(slip, tmp_path):
    """The first line says what was wrong (a usage may follow), never the token."""
    args, expected, said = slip
    task = tmp_path / "20261207-010101-0be01c4e.yml"
    task.write_text("payload:\n  task_token: c2VjcmV0LXRva2Vu\n")
    task.chmod(0o600)
    env = {"PATH": "/usr/bin:/bin", "TASK_QUEUE_DIR": str(tmp_path),
           "TEMPORAL_ADDRESS": "127.0.0.1:1", "TEMPORAL_HTTP_ADDRESS": "127.0.0.1:1"}
    code, _, err = await run_cli(*(arg.format(file=task) for arg in args), env=env)
    assert code == expected, err
    first = err.splitlines()[0]
    assert first.startswith("complete_activity: ") and said in first, err
    assert "Traceback" not in err and "c2VjcmV0LXRva2Vu" not in err


@pytest.mark.parametrize("name", ["fifo", "nested", "link", "directory"])
async def test_unreadable_task_files_exit_2_without_blocking(name, env, tmp_path):
    target = tmp_path / "task.yml"
    if name == "fifo":
        os.mkfifo(target)
    elif name == "nested":
        target.write_bytes(b"payload:\n" + b"- " * 100_000 + b"x\n")
    elif name == "link":
        (tmp_path / "real.yml").write_text("payload: {task_token: dG9r}\n")
        target.symlink_to(tmp_path / "real.yml")
    else:
        target.mkdir()
    code, _, err = await run_cli("--task-file", str(target), "success", env=env)
    assert code == EXIT_USAGE, err
    assert_one_line(err)


async def test_cli_loads_the_service_layer_only(env):
    """An agent's call over gRPC (AGENT_TRANSPORT=grpc) pays the SDK's bridge and one
    connection: no `temporalio.client`, no data converter, no pydantic, no YAML (unless it
    reads a task file). Over HTTP it loads no temporalio at all (test_http_handoff)."""
    env = {**env, "AGENT_TRANSPORT": "grpc"}
    token = base64.b64encode(b"\x0a\x02no-such-activity").decode()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", COMPLETE, token, "success", "x",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    _, err = await process.communicate()
    assert process.returncode in (3, 4), err.decode()[-500:]  # the server answered
    imported = {line.split("|")[-1].strip() for line in err.decode().splitlines()
                if line.startswith("import time:")}
    assert "temporalio.service" in imported
    heavy = {"temporalio.client", "temporalio.converter", "pydantic", "yaml", "temporalio.worker"}
    assert not heavy & imported


async def test_agents_can_hold_credentials_of_their_own(client, cfg, dirs, env, worker):
    """AGENT_TEMPORAL_* replace the worker's TEMPORAL_* (and Vault) for the agents' CLI."""
    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "own-creds")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        theirs = {**_without_http(env), "TEMPORAL_ADDRESS": "127.0.0.1:1",
                  "VAULT_ADDR": "http://127.0.0.1:1",
                  "AGENT_TEMPORAL_ADDRESS": env["TEMPORAL_ADDRESS"],
                  "AGENT_TEMPORAL_HTTP_ADDRESS": env["TEMPORAL_HTTP_ADDRESS"]}
        code, _, err = await run_cli("--task-file", str(path), "success", "mine", env=theirs)
        assert code == 0, err
        without = {k: v for k, v in theirs.items() if not k.startswith("AGENT_")}
        code, _, err = await run_cli("--task-file", str(path), "success", "x", env=without)
        assert code == 5 and "127.0.0.1:1" in err  # the worker's settings, unreachable here
        await handle.terminate("test over")


async def test_the_token_form_marks_its_own_file_too(client, cfg, dirs, env, worker):
    """Without --task-file the CLI finds the file holding the token in TASK_QUEUE_DIR."""
    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: None,
                                              "build_plan": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "token-form")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        token = yaml.safe_load(path.read_text())["payload"]["task_token"]
        code, _, err = await run_cli("-", "success", "by token", stdin=token.encode(), env=env)
        assert code == 0, err
        done = yaml.safe_load(path.read_text())
        assert (done["status"], done["result"]["output"]) == ("completed", "by token")
        await handle.terminate("test over")


def _token(workflow_id: str, run_id: str) -> bytes:
    """A task token as the server shapes it (fields 2 and 3: workflow id, run id)."""
    def text(field: int, value: str) -> bytes:
        return bytes([field << 3 | 2, len(value)]) + value.encode()
    return text(2, workflow_id) + text(3, run_id) + bytes([4 << 3, 9])


@pytest.mark.parametrize("key", ["implement_build", "execute_build_phase/7",
                                 "execute_build_phase/4242"])
def test_the_token_form_prefers_the_file_named_for_its_runs_stage(tmp_path, monkeypatch, key):
    """The file named for a stage of the token's run is read first (no read of every file);
    a decoy holding the same token under another (here older) name is found beside it (then
    neither is trusted: the next test); a phase beyond the names tried first is still found
    by reading the rest, newest first."""
    from agent_cli import task_files
    from taskdir.names import stage_task_id

    token = _token("build-1", "0b6c3a1e-run")
    text = base64.b64encode(token).decode()
    ours = tmp_path / f"20261129-100000-{stage_task_id('0b6c3a1e-run', key)[:8]}.yml"
    ours.write_text(f"payload:\n  task_token: {text}\n")
    for index in range(30):  # older files of other builds
        (tmp_path / f"20261128-0000{index:02d}-other{index:03d}.yml").write_text("id: x\n")
    beyond = key.endswith("/4242")
    if not beyond:
        (tmp_path / "20261128-000000-decoy000.yml").write_text(f"note: {text}\n")
    monkeypatch.setenv("TASK_QUEUE_DIR", str(tmp_path))
    decoy = [] if beyond else [tmp_path / "20261128-000000-decoy000.yml"]
    assert task_files.files_holding(text, token) == [ours, *decoy]


def test_a_planted_copy_of_a_token_decides_neither_address_nor_file(tmp_path):
    """The token form, with another agent's copy of the token (and its own address) planted
    beside the stage's file: the call goes where the environment says, one line says why, and
    neither file is marked (the worker's own settlement marks the right one)."""
    import subprocess
    import sys

    from taskdir.names import stage_task_id
    from testbed.agents import COMPLETE

    token = _token("build-1", "0b6c3a1e-run")
    text = base64.b64encode(token).decode()
    ours = tmp_path / f"20261129-100000-{stage_task_id('0b6c3a1e-run', 'implement_build')[:8]}.yml"
    planted = tmp_path / f"20991231-235959-{ours.name.rsplit('-', 1)[1]}"  # sorts first
    for path, port in ((ours, 3), (planted, 7)):
        path.write_text(f"status: in-progress\npayload:\n  task_token: {text}\n  temporal:\n"
                        f"    address: 127.0.0.1:{port}\n    namespace: default\n"
                        f"    tls: false\n    http_address: 127.0.0.1:{port}0\n")
        path.chmod(0o600)
    before = {path: path.read_bytes() for path in (ours, planted)}
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TASK_QUEUE_DIR": str(tmp_path),
           "AGENT_TRANSPORT": "http"}
    done = subprocess.run([sys.executable, COMPLETE, text, "success", "x"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    # the default address: nothing there (exit 5), or a server that knows no such activity (4)
    assert done.returncode in (4, 5), done.stderr
    assert "more than one task file holds this token" in done.stderr
    assert "127.0.0.1:70" not in done.stderr and "127.0.0.1:30" not in done.stderr
    assert text not in done.stderr + done.stdout
    assert {path: path.read_bytes() for path in (ours, planted)} == before


async def test_the_output_limit_is_256_kib_to_the_byte(client, cfg, dirs, env, worker):
    """Exactly 256 KiB (across arguments, joined by spaces) is sent; one byte more is not."""
    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: None,
                                              "build_plan": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "limit")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        third = (256 * 1024 - 2) // 3  # one argument may hold at most 128 KiB on Linux
        parts = ["é" * (third // 2), "x" * third, "x" * (256 * 1024 - 2 - third - third)]
        assert len(" ".join(parts).encode()) == 256 * 1024
        code, _, err = await run_cli("--task-file", str(path), "success", *parts[:2],
                                     parts[2] + "x", env=env)
        assert code == EXIT_BAD_OUTPUT and "larger than 262144 bytes" in err
        assert yaml.safe_load(path.read_text())["status"] == "submitted"  # nothing was sent
        code, _, err = await run_cli("--task-file", str(path), "success", *parts, env=env)
        assert code == 0, err
        await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"))
        history = await handle.fetch_history()
        completed = [e for e in history.events
                     if e.HasField("activity_task_completed_event_attributes")]
        sent = completed[0].activity_task_completed_event_attributes.result.payloads[0].data
        assert len(json.loads(sent)["output"].encode()) == 256 * 1024
        await handle.terminate("test over")


async def test_heartbeat_progress_reaches_buildctl_and_costs_no_workflow_task(client, cfg, dirs,
                                                                           env, worker):
    from testbed.helpers import buildctl

    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "beating")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        token = yaml.safe_load(path.read_text())["payload"]["task_token"]
        before = len((await handle.fetch_history()).events)
        code, out, err = await run_cli("heartbeat", "--task-file", str(path),
                                       "scaffolding: 3 of 5 done", env=env)
        assert (code, out.strip()) == (0, "progress recorded"), err
        assert token not in out + err

        async def shown() -> dict | None:
            _, text, _ = await buildctl(env, "--json", "status", handle.id)
            return json.loads(text).get("agent_progress")

        beat = await eventually(shown, 10.0)  # a 0.4-1 s CLI polled: room on a loaded machine
        assert beat["message"] == "scaffolding: 3 of 5 done"
        assert len((await handle.fetch_history()).events) == before  # not a signal
        _, text, _ = await buildctl(env, "status", handle.id)
        assert "agent progress: scaffolding: 3 of 5 done (" in text
        code, _, err = await run_cli("heartbeat", "-", "x" * 2049, stdin=token.encode(),
                                     env=env)
        assert code == EXIT_BAD_OUTPUT and "progress message is larger than 2048" in err
        at_limit = "\u00e9" * 1024  # 2048 bytes in UTF-8: the limit counts bytes
        code, out, err = await run_cli("heartbeat", "-", at_limit, stdin=token.encode(), env=env)
        assert (code, out.strip()) == (0, "progress recorded"), err

        async def at_limit_shown() -> bool:
            _, text, _ = await buildctl(env, "--json", "status", handle.id)
            return (json.loads(text).get("agent_progress") or {}).get("message") == at_limit

        await eventually(at_limit_shown, 10.0)
        code, _, err = await run_cli("heartbeat", "-", at_limit + "x", stdin=token.encode(),
                                     env=env)
        assert code == EXIT_BAD_OUTPUT and "progress message is larger than 2048" in err
        code, _, err = await run_cli("heartbeat", "--task-file", str(path), b"bad \xff",
                                     env=env)
        assert code == EXIT_BAD_OUTPUT and "not valid UTF-8" in err
        code, _, err = await run_cli("heartbeat", env=env)
        assert code == EXIT_USAGE and "heartbeat" in err
        await handle.terminate("test over")


def _without_http(env: dict[str, str]) -> dict[str, str]:
    """ENV without the HTTP API's address (derived then: the gRPC port + 10)."""
    return {name: value for name, value in env.items() if name != "TEMPORAL_HTTP_ADDRESS"}


def _without_temporal_settings(env: dict[str, str], base: Path) -> dict[str, str]:
    """An agent's shell: no TEMPORAL_* at all, and the system's python3 first on PATH."""
    bare = system_python_first(env, base)
    return {name: value for name, value in bare.items() if not name.startswith("TEMPORAL_")}


async def _python3(*args: str, env: dict[str, str], cwd: Path,
                   stdin: bytes | None = None) -> tuple[int, str, str]:
    """`python3 <repo>/complete_activity.py ARGS` as AGENTS.md writes it, from a shell."""
    process = await asyncio.create_subprocess_exec(
        "python3", COMPLETE, *args, env=env, cwd=cwd, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate(stdin)
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_task_file_says_where_its_stage_lives(client, cfg, dirs, env, worker, server,
                                                        tmp_path):
    """The worker is on the test server's random port, not localhost:7233; the agent's shell
    has no TEMPORAL_* settings and no venv: both forms of the file's command still work."""
    shell = _without_temporal_settings(env, tmp_path)
    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: None,
                                              "build_plan": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "where-it-lives")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        payload = yaml.safe_load(path.read_text())["payload"]
        assert payload["temporal"] == {"address": server.address, "namespace": "default",
                                       "tls": False, "http_address": server.http_address}
        code, out, err = await _python3("--task-file", str(path), "success", "out",
                                        env=shell, cwd=tmp_path)
        assert (code, out.strip()) == (0, "activity completed: success"), err
        implement = await eventually(lambda: stage_file(dirs["tasks"], "build_plan"))
        token = yaml.safe_load(implement.read_text())["payload"]["task_token"]
        code, out, err = await _python3("-", "success", "built", env=shell, cwd=tmp_path,
                                        stdin=token.encode())
        assert code == 0, err  # the token form finds its file, and so its stage's place
        await eventually(lambda: stage_file(dirs["tasks"], "security_audit"))
        await handle.terminate("test over")


def _file_at(tmp_path: Path, place: object) -> Path:
    """A task file whose stage lives at PLACE (payload.temporal), with a token of no run."""
    path = tmp_path / "20260101-000000-abcdef12.yml"
    token = base64.b64encode(b"\x12\x03wid\x1a\x03rid").decode()
    path.write_text(yaml.safe_dump({"id": "abcdef12", "payload": {
        "task_token": token, "temporal": place}}))
    path.chmod(0o600)
    return path


async def test_exit_5_names_the_address_and_where_it_came_from(env, tmp_path):
    path = _file_at(tmp_path, {"address": "127.0.0.1:1", "namespace": "default", "tls": False})
    shell = {name: value for name, value in env.items() if not name.startswith("TEMPORAL_")}
    code, _, err = await run_cli("--task-file", str(path), "success", env=shell)
    assert code == EXIT_UNREACHABLE
    assert err.strip() == ("complete_activity: cannot reach Temporal at 127.0.0.1:1 (from the "
                           "task file); and nothing answers HTTP at 127.0.0.1:11")
    code, _, err = await run_cli("--task-file", str(path), "success",
                                 env={**shell, "TEMPORAL_ADDRESS": "127.0.0.1:2"})
    assert code == EXIT_UNREACHABLE  # the shell's own setting wins over the file
    assert "at 127.0.0.1:2 (from TEMPORAL_ADDRESS);" in err
    code, _, err = await run_cli("--task-file", str(path), "success",
                                 env={**shell, "AGENT_TEMPORAL_ADDRESS": "127.0.0.1:3",
                                      "TEMPORAL_ADDRESS": "127.0.0.1:2"})
    assert "at 127.0.0.1:3 (from AGENT_TEMPORAL_ADDRESS);" in err


async def test_an_api_key_is_never_sent_to_an_address_the_file_names(env, tmp_path):
    path = _file_at(tmp_path, {"address": "127.0.0.1:1", "namespace": "default"})
    shell = {name: value for name, value in env.items() if not name.startswith("TEMPORAL_")}
    code, _, err = await run_cli("--task-file", str(path), "success",
                                 env={**shell, "TEMPORAL_API_KEY": "sekrit-key"})
    assert code == 6, err
    assert_one_line(err)
    assert "set TEMPORAL_ADDRESS" in err and "sekrit-key" not in err


@pytest.mark.parametrize("place", ["localhost:7233", {"address": "evil host:1"},
                                   {"namespace": "a/b"}, {"tls": "yes"},
                                   {"server_name": ["x"]}, {"http_address": "a/b:1"}])
async def test_a_forged_place_is_refused_in_one_line(place, env, tmp_path):
    path = _file_at(tmp_path, place)
    code, _, err = await run_cli("--task-file", str(path), "success", env=env)
    assert code == EXIT_BAD_TOKEN, err
    assert_one_line(err)
    assert "payload.temporal" in err


OFFERED_AGAIN = "complete_activity: this stage was offered again; use the current task file"


async def test_an_old_token_after_a_redispatch_says_so(client, cfg, dirs, env, worker, tmp_path):
    """The server accepts a completion of the re-dispatched stage's old activity (cancel
    requested, still pending), so it used to exit 0 while the stage kept waiting."""
    async with AgentSim(dirs["tasks"], env, {"build_prefab": lambda d, p: None,
                                              "build_plan": lambda d, p: None}):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "old-token")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        copy = tmp_path / path.name  # the agent's own copy of the first offer
        shutil.copy2(path, copy)
        old = yaml.safe_load(path.read_text())["payload"]["task_token"]
        await handle.signal(BuildWorkflowBase.redispatch)  # as the sweeper sends it
        await eventually(lambda: yaml.safe_load(path.read_text())["payload"]["task_token"]
                         != old)
        for args, stdin in ((("-", "success", "stale"), old.encode()),
                            (("--task-file", str(copy), "success", "stale"), None),
                            (("heartbeat", "-", "still on it"), old.encode())):
            code, out, err = await run_cli(*args, stdin=stdin, env=env)
            assert (code, err.strip(), out) == (EXIT_NOT_FOUND, OFFERED_AGAIN, ""), args
        assert (await progress_of(handle)).stage == "prefab"  # nothing happened to it
        code, _, err = await run_cli("--task-file", str(path), "success", "scaffolded", env=env)
        assert code == 0, err
        await eventually(lambda: stage_file(dirs["tasks"], "build_plan"))
        await handle.terminate("test over")


def _pending(activity_id: str, attempt: int, state: PendingActivityState) -> SimpleNamespace:
    return SimpleNamespace(activity_id=activity_id, attempt=attempt, state=state,
                           activity_type=SimpleNamespace(name="dispatch_stage"))


def test_a_newer_attempt_or_a_newer_activity_supersedes_a_token():
    facts = TokenFacts("wf", "run", 10, "2", "dispatch_stage", attempt=1)
    started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    cancelling = PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
    assert not superseded(facts, [_pending("2", 1, started)])
    assert superseded(facts, [_pending("2", 2, started)])  # retried: a new attempt's token
    assert superseded(facts, [_pending("2", 1, cancelling), _pending("3", 1, started)])
    assert not superseded(facts, [_pending("2", 1, cancelling)])  # the run is being cancelled
    assert not superseded(facts, [_pending("3", 1, started)])  # gone: the server says so
