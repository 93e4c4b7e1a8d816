"""mTLS end to end: nginx demands a client certificate; the worker and the agents' CLI get
theirs from Vault (protocol fake) and complete a stage through it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import TLSConfig

from testbed.agents import AgentSim
from testbed.helpers import eventually, files_of_type, start_pipeline, worker_env
from testbed.processes import WorkerProcess, started_worker
from tests.tls_bed import NginxGrpcProxy, make_certs
from tests.vault_fake import VaultFake

SECRET_ID = "approle-secret-9d2c"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def certs(tmp_path):
    return make_certs(certs_dir(tmp_path))


@pytest.fixture
def proxy(tmp_path, certs, server):
    with NginxGrpcProxy(tmp_path / "nginx", certs, server.port) as running:
        yield running


def vault_env(base: dict[str, str], vault: VaultFake, tmp_path) -> dict[str, str]:
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(SECRET_ID)
    return {**base, "VAULT_ADDR": vault.url, "VAULT_ROLE_ID": "worker",
            "VAULT_SECRET_ID_FILE": str(secret_file), "TEMPORAL_REQUIRE_TLS": "1"}


async def test_worker_and_cli_complete_a_stage_over_mtls(client, server, dirs, tmp_path, certs,
                                                         proxy):
    pems = {"ca_cert_pem": certs.ca.decode(), "client_cert_pem": certs.client_cert.decode(),
            "client_key_pem": certs.client_key.decode()}
    began = time.time()
    (tmp_path / "tmp").mkdir()
    with VaultFake("worker", SECRET_ID, {"temporal/worker": pems}) as vault:
        env = vault_env(worker_env(server, dirs, TEMPORAL_ADDRESS=proxy.address,
                                   TMPDIR=str(tmp_path / "tmp")), vault, tmp_path)
        async with started_worker(env, tmp_path / "worker.log") as worker:
            assert not any(e.get("event") == "tls_disabled" for e in worker.events())
            prefab_only = {"build_plan": lambda d, p: None}
            async with AgentSim(dirs["tasks"], env, prefab_only) as agents:
                handle = await start_pipeline(client, env["TASK_QUEUE"], dirs["tasks"], "tls")
                await eventually(lambda: files_of_type(dirs["tasks"], "build_plan"), 60)
            assert agents.errors == []
            assert [d["task_type"] for d in agents.seen] == ["build_prefab"]
            await handle.terminate("done")
    logins = [r for r in vault.requests if r[1] == "/v1/auth/approle/login"]
    assert len(logins) >= 2  # the worker and the CLI each logged in
    log_text = (tmp_path / "worker.log").read_text()
    assert SECRET_ID not in log_text and "PRIVATE KEY" not in log_text
    assert holding(certs.client_key, began, tmp_path, skip=certs_dir(tmp_path)) == []


def certs_dir(tmp_path: Path) -> Path:
    return tmp_path / "pki"


def holding(key: bytes, since: float, *places: Path, skip: Path) -> list[Path]:
    """Files written since SINCE, under PLACES (the run's HOME, TMPDIR and directories) or in
    the repository it ran from, that hold KEY's material (tls-and-vault.md: never on disk)."""
    body = max(key.splitlines(), key=len)  # one line of the key itself, not its armour
    found = []
    for path in [p for place in places for p in place.rglob("*")] + [
            p for p in ROOT.rglob("*") if not {".git", ".venv", ".tools"} & set(p.parts)]:
        if skip in path.parents or not path.is_file() or path.is_symlink():
            continue
        if path.stat().st_mtime >= since and body in path.read_bytes():
            found.append(path)
    return found


async def test_client_without_certificate_is_refused(proxy, certs):
    with pytest.raises(RuntimeError, match=r"(?i)failed client connect"):
        client = await Client.connect(proxy.address,
                                      tls=TLSConfig(server_root_ca_cert=certs.ca))
        await client.count_workflows()


async def test_client_with_certificate_is_accepted(proxy, certs):
    client = await Client.connect(proxy.address, tls=TLSConfig(
        server_root_ca_cert=certs.ca, client_cert=certs.client_cert,
        client_private_key=certs.client_key))
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version  # a real answer from the server behind the mTLS proxy


async def test_require_tls_without_credentials_refuses_to_start(server, dirs, tmp_path):
    env = worker_env(server, dirs, TEMPORAL_REQUIRE_TLS="1")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    assert await worker.wait_exit() == 6  # Exit.CONFIG (credentials)
    events = [e["event"] for e in worker.events()]
    assert "credentials_unavailable" in events and "worker_started" not in events
