"""A production-shaped Temporal for the tests: the real server v1.29.1 on PostgreSQL (SQL
persistence and visibility), two history/matching nodes, custom search attributes."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testbed.devserver import ROOT, free_port, port_answers

SERVER_HINT = ("the cluster tests need the Temporal server v1.29.1: run ./scripts/test.sh "
               "(it builds it with Go) or set TEMPORAL_SERVER_DIR")
POSTGRES_HINT = ("the cluster tests need PostgreSQL: run ./scripts/test.sh (it installs the "
                 "Debian package postgresql) or apt-get install postgresql")
DATABASES = {"temporal": "temporal", "temporal_visibility": "visibility"}
SEARCH_ATTRIBUTES = ("BuildName", "TargetAgent")
# Tests want new search attributes and namespaces at once, as the dev server has them.
DYNAMIC_CONFIG = {
    "system.forceSearchAttributesCacheRefreshOnRead": [{"value": True, "constraints": {}}],
    "frontend.enableUpdateWorkflowExecution": [{"value": True, "constraints": {}}],
    "limit.maxIDLength": [{"value": 255, "constraints": {}}],
}


def server_dir() -> Path:
    """The directory with temporal-server, temporal-sql-tool and schema/ (built if needed)."""
    given = os.environ.get("TEMPORAL_SERVER_DIR")
    if given and os.access(Path(given) / "temporal-server", os.X_OK):
        return Path(given)
    result = subprocess.run([str(ROOT / "scripts" / "ensure-temporal-server.sh")],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{SERVER_HINT}\n{result.stderr.strip()}")
    return Path(result.stdout.strip())


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian's layout)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda path: int(path.parent.parent.name))
    if not found:
        raise RuntimeError(POSTGRES_HINT)
    return found[-1].parent


class Postgres:
    """A throwaway PostgreSQL cluster on loopback (run as `postgres` when we are root)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = postgres_bin()
        # PostgreSQL refuses to run as root and must reach its directory: not under /root.
        self.base = Path(tempfile.mkdtemp(prefix="tbw-postgres-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._user:
            os.chown(self.base, self._user.pw_uid, self._user.pw_gid)

    def _as_owner(self) -> dict[str, object]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def start(self) -> None:
        subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-sync"], check=True,
                       capture_output=True, **self._as_owner())
        self.run()

    def halt(self) -> None:
        """Stop the server (fast shutdown: sessions are cut), keeping its data."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(60)
        self.process = None

    def run(self) -> None:
        """Start the server on its data directory and wait until it answers."""
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.base), "-c", "listen_addresses=127.0.0.1",
             "-c", "max_connections=300", "-c", "fsync=off"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **self._as_owner())
        log.close()
        _wait(lambda: port_answers(self.port), 60, f"PostgreSQL on port {self.port}",
              self.log)

    def stop(self) -> None:
        _terminate(self.process)
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class Node:
    """One server process running some of the services."""

    name: str
    services: tuple[str, ...]
    ports: dict[str, tuple[int, int]]  # service -> (grpc, membership)
    config_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None


@dataclass
class TemporalCluster:
    """Two server nodes on one PostgreSQL: node a runs the frontend, history, matching and
    worker services; node b history and matching (kill it to test fail-over)."""

    cli: str
    base: Path
    shards: int = 16  # enough that both history nodes own some
    binaries: Path = field(default_factory=server_dir)
    postgres: Postgres = field(init=False)
    nodes: dict[str, Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.postgres = Postgres(free_port())
        self.frontend_port = free_port()
        self.http_port = free_port()  # the frontend's HTTP API (frontend.rpc.httpPort)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.frontend_port}"

    @property
    def http_address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self) -> None:
        """Start PostgreSQL, load the schema, start both nodes, register the namespace; on
        any failure stop what was started and raise."""
        self.base.mkdir(parents=True, exist_ok=True)
        try:
            self.postgres.start()
            self._schema()
            (self.base / "dynamicconfig.yaml").write_text(yaml.safe_dump(DYNAMIC_CONFIG))
            self._add_node("a", ("frontend", "history", "matching", "worker"))
            self._add_node("b", ("history", "matching"))
            self.start_node("a")
            self.start_node("b")
            self._namespace()
        except BaseException:
            self.stop()
            raise

    def _sql(self, database: str, *args: str) -> None:
        command = [str(self.binaries / "temporal-sql-tool"), "--plugin", "postgres12",
                   "--ep", "127.0.0.1", "-p", str(self.postgres.port), "-u", "postgres",
                   "--db", database, *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"temporal-sql-tool {' '.join(args)} on {database}: "
                               f"{(result.stderr or result.stdout).strip()[-800:]}")

    def _schema(self) -> None:
        for database, schema in DATABASES.items():
            self._sql(database, "create-database")
            self._sql(database, "setup-schema", "-v", "0.0")
            self._sql(database, "update-schema", "-d",
                      str(self.binaries / "schema" / schema / "versioned"))

    def _store(self, database: str, connections: int) -> dict[str, object]:
        return {"sql": {"pluginName": "postgres12", "databaseName": database,
                        "connectAddr": f"127.0.0.1:{self.postgres.port}",
                        "connectProtocol": "tcp", "user": "postgres", "password": "",
                        "maxConns": connections, "maxIdleConns": connections,
                        "maxConnLifetime": "1h"}}

    def _add_node(self, name: str, services: tuple[str, ...]) -> None:
        ports = {service: (self.frontend_port if service == "frontend" else free_port(),
                           free_port()) for service in services}
        config_dir = self.base / f"node-{name}"
        config_dir.mkdir(parents=True, exist_ok=True)
        rpc = {service: {"rpc": {"grpcPort": grpc, "membershipPort": member,
                                 "bindOnLocalHost": True}}
               for service, (grpc, member) in ports.items()}
        if "frontend" in rpc:
            rpc["frontend"]["rpc"]["httpPort"] = self.http_port
        disabled = {"state": "disabled"}
        config = {
            "log": {"stdout": True, "level": "warn"},
            "persistence": {
                "defaultStore": "default", "visibilityStore": "visibility",
                "numHistoryShards": self.shards,
                "datastores": {"default": self._store("temporal", 20),
                               "visibility": self._store("temporal_visibility", 10)}},
            "global": {"membership": {"maxJoinDuration": "30s",
                                      "broadcastAddress": "127.0.0.1"}},
            "services": rpc,
            "clusterMetadata": {
                "enableGlobalNamespace": False, "failoverVersionIncrement": 10,
                "masterClusterName": "active", "currentClusterName": "active",
                "clusterInformation": {"active": {"enabled": True, "initialFailoverVersion": 1,
                                                  "rpcName": "frontend",
                                                  "rpcAddress": self.address}}},
            "dcRedirectionPolicy": {"policy": "noop"},
            "archival": {"history": disabled, "visibility": disabled},
            "namespaceDefaults": {"archival": {"history": disabled, "visibility": disabled}},
            "dynamicConfigClient": {"filepath": str(self.base / "dynamicconfig.yaml"),
                                    "pollInterval": "10s"},
        }
        (config_dir / "development.yaml").write_text(yaml.safe_dump(config))
        self.nodes[name] = Node(name, services, ports, config_dir, self.base / f"node-{name}.log")

    def start_node(self, name: str, timeout: float = 90.0) -> None:
        node = self.nodes[name]
        args = [str(self.binaries / "temporal-server"), "--root", "/", "--config",
                str(node.config_dir), "--env", "development", "--allow-no-auth", "start"]
        for service in node.services:
            args += ["--service", service]
        with open(node.log, "ab") as log:
            node.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        grpc_ports = [grpc for service, (grpc, _) in node.ports.items() if service != "worker"]
        _wait(lambda: all(port_answers(port) for port in grpc_ports)
              or node.process.poll() is not None, timeout, f"server node {name}", node.log)
        if node.process.poll() is not None:
            raise RuntimeError(f"server node {name} exited: {_tail(node.log)}")

    def kill_node(self, name: str) -> None:
        """SIGKILL one node, as a crashed machine (its shards move to the other node)."""
        node = self.nodes[name]
        if node.process is not None and node.process.poll() is None:
            os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait()
        node.process = None

    def _psql(self, query: str) -> list[list[str]]:
        result = subprocess.run(
            [str(self.postgres.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.postgres.port),
             "-U", "postgres", "-d", "temporal", "-At", "-F", "\t", "-c", query],
            capture_output=True, text=True, check=True)
        return [line.split("\t") for line in result.stdout.splitlines() if line]

    def shards_of(self, name: str) -> set[int]:
        """The history shards node NAME owns now (the owner is in each shard's record)."""
        port = self.nodes[name].ports["history"][0]
        owner = f"127.0.0.1:{port}-".encode().hex()
        rows = self._psql("SELECT shard_id, encode(data, 'hex') FROM shards")
        return {int(shard) for shard, data in rows if owner in data}

    def shard_of(self, workflow_id: str) -> int | None:
        """The history shard holding WORKFLOW_ID's current run."""
        rows = self._psql("SELECT shard_id FROM current_executions WHERE workflow_id = "
                          f"'{workflow_id.replace(chr(39), '')}'")
        return int(rows[0][0]) if rows else None

    def _cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.cli, *args, "--address", self.address],
                              capture_output=True, text=True, check=False)

    def _namespace(self, timeout: float = 120.0) -> None:
        """Register `default` and our search attributes (the dev server's are flags)."""
        def registered() -> bool:
            result = self._cli("operator", "namespace", "create", "--namespace", "default",
                               "--retention", "24h")
            return result.returncode == 0 or "already" in result.stderr.lower()

        _wait(registered, timeout, "namespace default", self.nodes["a"].log)
        for attribute in SEARCH_ATTRIBUTES:
            def created(name: str = attribute) -> bool:
                result = self._cli("operator", "search-attribute", "create", "--namespace",
                                   "default", "--name", name, "--type", "Keyword")
                return result.returncode == 0 or "already" in result.stderr.lower()

            _wait(created, timeout, f"search attribute {attribute}", self.nodes["a"].log)

    def stop(self) -> None:
        for name in reversed(list(self.nodes)):
            node = self.nodes[name]
            if node.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGTERM)
                _terminate(node.process)
        self.postgres.stop()


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    except OSError:
        return "(no log)"


def _wait(ready, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready within {timeout:g}s: {_tail(log)}")
