"""The agents' hand-off over Temporal's HTTP API (#39): complete_activity.py as agents run it,
against the real dev server's HTTP port, the mTLS test bed and the PostgreSQL cluster."""

from __future__ import annotations

import asyncio
import base64
import json
import sys

import pytest
import yaml
from temporalio.client import WorkflowFailureError

from contract import JSON_ENCODING, PHASE_FAILED, completion_json
from testbed.agents import COMPLETE, AgentSim, run_cli
from testbed.devserver import free_port
from testbed.helpers import (
    buildctl,
    eventually,
    progress_of,
    running_worker,
    stage_file,
    start_pipeline,
    worker_env,
)
from tests.http_receiver import HttpReceiver
from tests.tls_bed import NginxGrpcProxy, make_certs
from tests.vault_fake import VaultFake

EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_STOP = 4, 5, 8
HTTP_ONLY = {"AGENT_TRANSPORT": "http"}
# HTTP only, with nothing on the gRPC address: only the HTTP API can have done what happened.
NO_GRPC = {**HTTP_ONLY, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
HOLD = {"build_prefab": lambda d, p: None, "build_plan": lambda d, p: None}


def _imports(stderr: str) -> set[str]:
    """The modules a `python -X importtime` run imported."""
    return {line.split("|")[-1].strip() for line in stderr.splitlines()
            if line.startswith("import time:")}


async def _cli_importtime(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", COMPLETE, *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


def _events(history, field: str) -> list:
    return [getattr(e, field) for e in history.events if e.HasField(field)]


async def test_success_over_http_sends_the_same_bytes_and_loads_no_sdk(client, cfg, dirs, env,
                                                                       worker):
    """The completion the workflow reads is byte for byte the gRPC path's JSON payload; the
    CLI imported nothing of temporalio to send it."""
    async with AgentSim(dirs["tasks"], env, HOLD):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "http-ok")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        token = yaml.safe_load(path.read_text())["payload"]["task_token"]
        code, out, err = await _cli_importtime("--task-file", str(path), "success", "été ok",
                                               env={**env, **HTTP_ONLY})
        assert (code, out.strip()) == (0, "activity completed: success"), err[-500:]
        assert token not in out + err
        assert not {name for name in _imports(err) if name.startswith("temporalio")}
        assert yaml.safe_load(path.read_text())["status"] == "completed"
        await eventually(lambda: stage_file(dirs["tasks"], "build_plan"))
        completed = _events(await handle.fetch_history(),
                            "activity_task_completed_event_attributes")
        payload = completed[0].result.payloads[0]
        assert dict(payload.metadata) == {"encoding": JSON_ENCODING}
        assert payload.data == completion_json("été ok")
        # the same activity again: already completed, exit 4 in one line
        code, out, err = await run_cli("-", "success", stdin=token.encode(),
                                       env={**env, **HTTP_ONLY})
        assert code == EXIT_NOT_FOUND and err.startswith("complete_activity: no such activity")
        assert len(err.strip().splitlines()) == 1 and token not in err
        await handle.terminate("test over")


async def test_failure_over_http_fails_the_stage_as_grpc_does(client, cfg, dirs, env, worker):
    async with AgentSim(dirs["tasks"], env, HOLD):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "http-failed")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        code, _, err = await run_cli("--task-file", str(path), "failed", "compiler broke",
                                     env={**env, **NO_GRPC})
        assert code == 0, err
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert "Stage prefab failed: compiler broke" in str(caught.value.cause)
    failed = _events(await handle.fetch_history(), "activity_task_failed_event_attributes")
    info = failed[0].failure.application_failure_info
    assert (info.type, info.non_retryable) == (PHASE_FAILED, True)


async def test_heartbeat_over_http_shows_progress_and_a_cancel_says_stop(client, cfg, dirs, env,
                                                                         worker):
    http = {**env, **NO_GRPC}
    async with AgentSim(dirs["tasks"], env, HOLD):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "http-beat")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        code, out, err = await run_cli("heartbeat", "--task-file", str(path), "2 of 5 done",
                                       env=http)
        assert (code, out.strip()) == (0, "progress recorded"), err

        async def shown() -> dict | None:
            _, text, _ = await buildctl(env, "--json", "status", handle.id)
            return json.loads(text).get("agent_progress")

        assert (await eventually(shown))["message"] == "2 of 5 done"
        await handle.cancel()
        code, _, err = await eventually(lambda: _stopped(path, http))
        assert code == EXIT_STOP and err.strip() == (
            "complete_activity: stop: this stage was cancelled (its task file says so too); "
            "stop working on it")
        with pytest.raises(WorkflowFailureError):
            await handle.result()


async def _stopped(path, env: dict[str, str]) -> tuple[int, str, str] | None:
    """The heartbeat's answer once it is not 0 (the cancel reaches the activity a moment
    after the cancel request)."""
    code, out, err = await run_cli("heartbeat", "--task-file", str(path), "still?", env=env)
    return None if code == 0 else (code, out, err)


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_an_old_token_says_offered_again_on_either_transport(client, cfg, dirs, env,
                                                                    worker, transport):
    from workflows.base import BuildWorkflowBase

    chosen = {**env, "AGENT_TRANSPORT": transport}
    async with AgentSim(dirs["tasks"], env, HOLD):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "http-stale")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        old = yaml.safe_load(path.read_text())["payload"]["task_token"]
        await handle.signal(BuildWorkflowBase.redispatch)
        await eventually(lambda: yaml.safe_load(path.read_text())["payload"]["task_token"]
                         != old)
        for args in (("-", "success", "stale"), ("heartbeat", "-", "on it")):
            code, _, err = await run_cli(*args, stdin=old.encode(), env=chosen)
            assert (code, err.strip()) == (EXIT_NOT_FOUND, "complete_activity: this stage "
                                           "was offered again; use the current task file")
        assert (await progress_of(handle)).stage == "prefab"
        await handle.terminate("test over")


async def test_a_closed_http_port_falls_back_to_grpc_once_and_says_so(client, cfg, dirs, env,
                                                                      worker):
    closed = {**env, "TEMPORAL_HTTP_ADDRESS": f"127.0.0.1:{free_port()}"}
    async with AgentSim(dirs["tasks"], env, HOLD):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "http-closed")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        code, _, err = await run_cli("--task-file", str(path), "success", "x",
                                     env={**closed, **HTTP_ONLY})
        assert code == EXIT_UNREACHABLE and "AGENT_TRANSPORT=http" in err  # chosen: no gRPC
        assert yaml.safe_load(path.read_text())["status"] == "submitted"
        code, out, err = await run_cli("--task-file", str(path), "success", "x", env=closed)
        assert (code, out.strip()) == (0, "activity completed: success"), err
        assert err.strip() == (f"complete_activity: note: nothing answers HTTP at "
                               f"{closed['TEMPORAL_HTTP_ADDRESS']}; used gRPC")
        await eventually(lambda: stage_file(dirs["tasks"], "build_plan"))
        await handle.terminate("test over")


@pytest.mark.parametrize("status", [404, 200])
async def test_what_is_not_temporals_api_falls_back_too(client, cfg, dirs, env, worker, status):
    """Something else on the HTTP port (a 404 page, a 200 that is not JSON): nothing was done
    there, so gRPC completes the stage."""
    async with AgentSim(dirs["tasks"], env, HOLD):
        handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "http-other")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
        with _HtmlReceiver(status) as other:
            shell = {**env, "TEMPORAL_HTTP_ADDRESS": other.address}
            code, _, err = await run_cli("--task-file", str(path), "success", "x", env=shell)
        assert code == 0, err
        assert "not Temporal's HTTP API" in err and "used gRPC" in err
        await eventually(lambda: stage_file(dirs["tasks"], "build_plan"))
        await handle.terminate("test over")


class _HtmlReceiver(HttpReceiver):
    """An HTTP server that answers every request with STATUS and an HTML page."""

    def __init__(self, status: int) -> None:
        super().__init__([status] * 4)
        handler = self.server.RequestHandlerClass

        def html(request) -> None:
            request.send_response(self.statuses.pop(0) if self.statuses else 200)
            request.send_header("Content-Type", "text/html")
            request.send_header("Content-Length", "13")
            request.end_headers()
            request.wfile.write(b"<html></html>")

        handler.do_POST = html

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


def test_the_api_key_goes_as_a_bearer_header_with_the_namespace(env, tmp_path):
    """A capture of the request: path, headers and body as Temporal's HTTP API wants them;
    the key and the token never printed."""
    import subprocess

    token = base64.b64encode(b"\x12\x03wid\x1a\x03rid-token").decode()
    with HttpReceiver() as capture:
        address = capture.url.removeprefix("http://")
        shell = {**env, "TEMPORAL_HTTP_ADDRESS": address, "TEMPORAL_API_KEY": "sekrit-key",
                 "TEMPORAL_TLS": "false", "TEMPORAL_NAMESPACE": "builds", **HTTP_ONLY}
        done = subprocess.run([sys.executable, COMPLETE, token, "success", "out"], env=shell,
                              capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "activity completed: success")
    [sent] = capture.requests
    assert sent.path == "/api/v1/namespaces/builds/activities/complete?noPayloadShorthand"
    assert sent.headers["Authorization"] == "Bearer sekrit-key"
    assert sent.headers["temporal-namespace"] == "builds"
    body = json.loads(sent.body)
    assert (body["taskToken"], body["namespace"]) == (token, "builds")
    assert "sekrit-key" not in done.stdout + done.stderr and token not in done.stderr


@pytest.mark.parametrize(("setting", "value"), [("AGENT_TRANSPORT", "carrier-pigeon"),
                                                ("TEMPORAL_HTTP_ADDRESS", "no port"),
                                                ("AGENT_TEMPORAL_HTTP_ADDRESS", "a/b:1")])
async def test_a_bad_transport_setting_is_one_line_exit_6(env, setting, value):
    token = base64.b64encode(b"\x12\x03wid\x1a\x03rid").decode()
    code, _, err = await run_cli(token, "success", env={**env, setting: value})
    assert code == 6 and len(err.strip().splitlines()) == 1, err
    assert setting.removeprefix("AGENT_") in err and "Traceback" not in err


SECRET_ID = "approle-secret-http"


async def test_mtls_over_http_with_files_or_the_vault_material(client, server, cfg, dirs, env,
                                                               worker, tmp_path):
    """nginx demands a client certificate in front of the HTTP API (the dev server serves
    no TLS itself). Without one nothing is sent; with the TLS files (the SDK's reader) or
    the Vault material (as on gRPC) the CLI completes a stage each."""
    certs = make_certs(tmp_path / "pki")
    pems = {"ca_cert_pem": certs.ca.decode(), "client_cert_pem": certs.client_cert.decode(),
            "client_key_pem": certs.client_key.decode()}
    secret = tmp_path / "secret-id"
    secret.write_text(SECRET_ID)
    with NginxGrpcProxy(tmp_path / "nginx", certs, server.http_port, http=True) as proxy, \
            VaultFake("worker", SECRET_ID, {"temporal/worker": pems}) as vault:
        agent = {**env, **HTTP_ONLY, "TEMPORAL_HTTP_ADDRESS": proxy.address,
                 "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certs.ca_path)}
        files = {**agent, "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "pki/client.pem"),
                 "TEMPORAL_TLS_CLIENT_KEY_PATH": str(tmp_path / "pki/client.key")}
        by_vault = {**env, **HTTP_ONLY, "TEMPORAL_HTTP_ADDRESS": proxy.address,
                    "VAULT_ADDR": vault.url, "VAULT_ROLE_ID": "worker",
                    "VAULT_SECRET_ID_FILE": str(secret), "TEMPORAL_REQUIRE_TLS": "1"}
        async with AgentSim(dirs["tasks"], env, HOLD):
            handle = await start_pipeline(client, cfg.task_queue, dirs["tasks"], "http-tls")
            path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"))
            code, _, err = await run_cli("--task-file", str(path), "success", "x", env=agent)
            assert code == EXIT_UNREACHABLE and proxy.address in err, err
            assert yaml.safe_load(path.read_text())["status"] == "submitted"
            code, _, err = await run_cli("--task-file", str(path), "success", "files",
                                         env=files)
            assert code == 0, err
            path = await eventually(lambda: stage_file(dirs["tasks"], "build_plan"))
            code, _, err = await run_cli("--task-file", str(path), "success", "vault",
                                         env=by_vault)
            assert code == 0, err
            await eventually(lambda: stage_file(dirs["tasks"], "security_audit"))
            await handle.terminate("test over")
    assert [r for r in vault.requests if r[1] == "/v1/auth/approle/login"]
    assert "PRIVATE KEY" not in err


async def test_the_cluster_serves_the_http_api(cluster, cluster_client, dirs):
    """The real server v1.29.1 on PostgreSQL: its frontend's httpPort takes the agents'
    heartbeat (shown by buildctl), success, a second completion (exit 4) and a failure."""
    env = worker_env(cluster, dirs)
    http = {**env, **NO_GRPC}
    from config import load_config

    config = load_config(env)
    async with running_worker(cluster_client, config), AgentSim(dirs["tasks"], env, HOLD):
        handle = await start_pipeline(cluster_client, config.task_queue, dirs["tasks"],
                                      "cluster-http")
        path = await eventually(lambda: stage_file(dirs["tasks"], "build_prefab"), 60)
        assert yaml.safe_load(path.read_text())["payload"]["temporal"]["http_address"] == \
            cluster.http_address
        code, _, err = await run_cli("heartbeat", "--task-file", str(path), "3 of 4 done",
                                     env=http)
        assert code == 0, err

        async def shown() -> dict | None:
            _, text, _ = await buildctl(env, "--json", "status", handle.id)
            return json.loads(text).get("agent_progress")

        assert (await eventually(shown, 60))["message"] == "3 of 4 done"
        code, _, err = await run_cli("--task-file", str(path), "success", "on the cluster",
                                     env=http)
        assert code == 0, err
        code, _, err = await run_cli("--task-file", str(path), "success", "again", env=http)
        assert code == EXIT_NOT_FOUND and err.startswith("complete_activity: no such activity")
        plan = await eventually(lambda: stage_file(dirs["tasks"], "build_plan"), 60)
        code, _, err = await run_cli("--task-file", str(plan), "failed", "no plan here",
                                     env=http)
        assert code == 0, err
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert "Stage implement failed: no plan here" in str(caught.value.cause)
