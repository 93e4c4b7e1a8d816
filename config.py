"""WorkerConfig: every setting of the worker, read once from the environment and validated."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connection.settings import ClientSettings, load_client_settings, parse_bool
from contract import DEFAULT_TASK_DIR
from exceptions import ConfigError
from models import StageTimings
from stages import STAGES
from taskdir.vocabulary import Priority, TaskStyle, Vocabulary, WorkflowMode

REPO_DIR = Path(__file__).resolve().parent
NOTIFIER_NAMES = ("script", "ntfy", "matrix")
# The task-queue tooling's usual roster (TASK_ROSTER), and the roster names our fixed agents
# get in that vocabulary unless AGENT_MAP says otherwise (../shared/TASK-QUEUE.md).
DEFAULT_ROSTER = ("sysadmin", "developer", "research", "writer", "security", "steward")
FIXED_AGENT_ROSTER_NAMES = {"security-agent": "security", "claudebox": "developer"}
PATH_FIELDS = ("send_matrix_script", "audit_dir", "legacy_audit_dir", "task_dir", "summary_dir")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
# main: runs the workflows (and every activity); host: only the activities that touch this
# host's task directory, polled on the host's own task queue (see README "Several hosts").
WorkerRole = Literal["main", "host"]
FileChannel = Literal["open", "closed"]

# Durations: env var -> field (of StageTimings, else of WorkerConfig); 30s / 15m / 2h / 7d.
# Defaults live on the models' fields only. A stage's limit is TIMEOUT_<its field's suffix>.
DURATIONS = {
    **{stage.timeout.upper(): stage.timeout for stage in STAGES},
    "TRIAGE_RETRY_INITIAL": "triage_retry_initial", "TRIAGE_RETRY_MAX": "triage_retry_max",
    "BLOCK_WAIT_TIMEOUT": "block_wait_timeout", "BLOCK_CHECK_INTERVAL": "block_check_interval",
    "METRICS_INTERVAL": "metrics_interval",
    "AGENT_HEARTBEAT_TIMEOUT": "agent_heartbeat_timeout",
}
INTEGERS = {"MAX_CONCURRENT_ACTIVITIES": "max_concurrent_activities",
            "MAX_CACHED_WORKFLOWS": "max_cached_workflows",
            "MAX_CONCURRENT_WORKFLOW_TASKS": "max_concurrent_workflow_tasks",
            "TRIAGE_MAX_ATTEMPTS": "triage_max_attempts",
            "AGENT_REOFFERS": "agent_reoffers"}
_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds for an operator-friendly duration ("90", "30s", "2h", "7d"), or ValueError."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 7d)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or ""]
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return seconds


class WorkerConfig(BaseModel):
    """Validated settings; secrets are never fields here (only paths to them)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    client: ClientSettings
    timings: StageTimings = Field(default_factory=StageTimings)  # handed to each run
    task_queue: str = "helm-build"
    role: WorkerRole = "main"
    # The queue the workflows run on; a host worker lists the builds there. Main: task_queue.
    workflow_task_queue: str = "helm-build"
    agent_queues: dict[str, str] = Field(default_factory=dict)  # agent -> its host's queue
    matrix_room: str = "sysadmin"
    send_matrix_script: Path = Path("~/scripts/send-matrix.sh")
    ntfy_url: str = ""
    notifiers: tuple[str, ...] = ("script",)
    matrix_homeserver: str = ""
    matrix_room_id: str = ""
    matrix_access_token_file: Path | None = None
    audit_dir: Path = Path("~/.claude/comms/artifacts/audit-requests")
    # v0.5's code default: audits it requested keep their triage file there.
    legacy_audit_dir: Path = Path("~/.claude/comms/artifacts")
    task_dir: Path = Path(DEFAULT_TASK_DIR)
    summary_dir: Path = Path("~/repos/personal/agent-activity/workflows")
    log_level: LogLevel = "INFO"
    log_file: str | None = None
    otel_endpoint: str | None = None
    otel_service_name: str = "temporal-build-worker"
    prometheus_bind_address: str | None = None
    temporal_ui_url: str = "http://localhost:8233"
    max_concurrent_activities: int = Field(default=200, ge=1, le=10000)
    max_cached_workflows: int = Field(default=500, ge=0, le=100000)
    # Workflow tasks run under the GIL: a few at once keep both cores busy; the SDK's default
    # (a thread per concurrent task, up to 500) only adds threads, each with its own heap.
    max_concurrent_workflow_tasks: int = Field(default=4, ge=1, le=1000)
    metrics_interval: float = 10
    index_builds: bool = True
    file_approvers: frozenset[str] = frozenset()  # empty: any file edit decides (upstream)
    # open (drop-in): task files decide blocks and complete stages through the tooling;
    # closed: they decide and complete nothing (Temporal and the task token only).
    file_channel: FileChannel = "open"
    task_vocabulary: Vocabulary = "upstream"
    agent_map: dict[str, str] = Field(default_factory=dict)
    workflow_mode: WorkflowMode = "semi-auto"
    task_priority: Priority = "normal"
    # (event, details) to log once logging is set up: settings we accepted with a caveat.
    warnings: tuple[tuple[str, dict[str, object]], ...] = ()

    @field_validator("task_queue", "matrix_room", "workflow_task_queue")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("notifiers")
    @classmethod
    def _known_notifiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in NOTIFIER_NAMES]
        if unknown:
            raise ValueError(f"unknown notifier(s) {unknown}; choose from {NOTIFIER_NAMES}")
        return value

    @property
    def build_queue(self) -> str:
        """The task queue our workflows run on (a host worker's builds live there)."""
        return self.task_queue if self.role == "main" else self.workflow_task_queue

    def channels(self) -> dict[str, object]:
        """Who can decide blocks and finish stages, for the one `channels` line at start."""
        files = self.file_channel == "open"
        return {"signal": True, "update": True, "buildctl": True, "web_ui": True,
                "token_completion": True, "task_file_decision": files,
                "tooling_completion": files,
                "file_approvers": sorted(self.file_approvers) or None}

    def task_style(self) -> TaskStyle:
        return TaskStyle(vocabulary=self.task_vocabulary, agent_map=self.agent_map,
                         workflow_mode=self.workflow_mode, priority=self.task_priority)

    def describe(self) -> dict[str, object]:
        """Non-secret settings for the config_loaded log line."""
        data = self.model_dump(exclude={"client", "warnings", "file_approvers"}, mode="json")
        data["file_approvers"] = sorted(self.file_approvers)
        data.update(self.client.describe())
        return data


def _notifiers(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("NOTIFIERS")
    if raw is not None and raw.strip().lower() == "none":
        return ()  # notifications off (a trial, or decisions watched in the Web UI)
    if raw is None:
        names = ["script"]
        if env.get("NTFY_URL", "").strip():
            names.append("ntfy")
        return tuple(names)
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def _pairs(name: str, raw: str, value: str) -> dict[str, str]:
    """`security-agent=security,claudebox=developer` -> {agent: VALUE}, for variable NAME."""
    pairs = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        agent, sep, other = (side.strip() for side in item.partition("="))
        if not (sep and agent and other):
            raise ConfigError(f"{name} entries look like agent={value}, got {item!r}")
        pairs[agent] = other
    return pairs


def _parsed(env: Mapping[str, str], table: dict[str, str],
            parse: Callable[[str], float | int]) -> dict[str, float | int]:
    """The fields of TABLE whose variables are set, parsed (unset: the field's default)."""
    values = {}
    for name, field in table.items():
        raw = env.get(name, "").strip()
        if raw:
            try:
                values[field] = parse(raw)
            except ValueError as err:
                raise ConfigError(f"{name}: {err}") from None
    return values


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"must be an integer, got {text!r}") from None


# Variables taken as they are (text), and the WorkerConfig field each sets.
PLAIN = {
    "TASK_QUEUE": "task_queue",
    "WORKER_ROLE": "role",
    "WORKFLOW_TASK_QUEUE": "workflow_task_queue",
    "MATRIX_ROOM": "matrix_room",
    "SEND_MATRIX_SCRIPT": "send_matrix_script",
    "NTFY_URL": "ntfy_url",
    "MATRIX_HOMESERVER": "matrix_homeserver",
    "MATRIX_ROOM_ID": "matrix_room_id",
    "MATRIX_ACCESS_TOKEN_FILE": "matrix_access_token_file",
    "TEMPORAL_AUDIT_DIR": "audit_dir",
    "LEGACY_AUDIT_DIR": "legacy_audit_dir",
    "TASK_QUEUE_DIR": "task_dir",
    "SUMMARY_DIR": "summary_dir",
    "LOG_FILE": "log_file",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "otel_endpoint",
    "OTEL_SERVICE_NAME": "otel_service_name",
    "PROMETHEUS_BIND_ADDRESS": "prometheus_bind_address",
    "TEMPORAL_UI_URL": "temporal_ui_url",
    "TASK_VOCABULARY": "task_vocabulary",
    "TASK_WORKFLOW_MODE": "workflow_mode",
    "TASK_PRIORITY": "task_priority",
    "FILE_CHANNEL": "file_channel",
}
Warnings = list[tuple[str, dict[str, object]]]


def load_config(env: Mapping[str, str] | None = None) -> WorkerConfig:
    """Build the WorkerConfig from ENV (default os.environ); raise ConfigError when invalid."""
    env = os.environ if env is None else env
    client = load_client_settings(env)
    values: dict[str, object] = {"client": client}
    values.update({field: env[name].strip() for name, field in PLAIN.items()
                   if env.get(name, "").strip()})
    values.setdefault("temporal_ui_url", _ui_url(env, client.address))
    warnings: Warnings = []
    _log_level(env, values, warnings)
    if client.vault_missing:
        warnings.append(("vault_partial", {"missing": list(client.vault_missing),
                                           "effect": "Vault mTLS off (all three needed)"}))
    _paths(env, values)
    _notifiers_and_script(env, values, warnings)
    _agents(env, values, warnings)
    if env.get("INDEX_BUILDS", "").strip():
        values["index_builds"] = parse_bool("INDEX_BUILDS", env["INDEX_BUILDS"])
    numbers = _numbers(env)
    timing_fields = StageTimings.model_fields
    values.update({k: v for k, v in numbers.items() if k not in timing_fields})
    values["warnings"] = tuple(warnings)
    try:
        values["timings"] = StageTimings(**{k: v for k, v in numbers.items()
                                           if k in timing_fields})
        config = WorkerConfig(**values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None
    _check_combinations(config)
    return config


def _ui_url(env: Mapping[str, str], address: str) -> str:
    """The Web UI beside a local dev server: TEMPORAL_UI_PORT, else the gRPC port + 1000 (as
    scripts/run.sh and the Temporal CLI place it); elsewhere the documented default."""
    host, _, port = address.rpartition(":")
    ui_port = env.get("TEMPORAL_UI_PORT", "").strip()
    if host.strip("[]") in ("localhost", "127.0.0.1", "::1") and port.isdigit():
        return f"http://localhost:{ui_port if ui_port.isdigit() else int(port) + 1000}"
    return f"http://localhost:{ui_port}" if ui_port.isdigit() else "http://localhost:8233"


def _log_level(env: Mapping[str, str], values: dict[str, object], warnings: Warnings) -> None:
    level = env.get("LOG_LEVEL", "").strip().upper()
    level = LOG_LEVEL_ALIASES.get(level, level)
    if level in get_args(LogLevel):
        values["log_level"] = level
    elif level:
        warnings.append(("log_level_unknown", {"value": env["LOG_LEVEL"][:40], "using": "INFO"}))


def _paths(env: Mapping[str, str], values: dict[str, object]) -> None:
    """Every path setting as a Path, `~` as the environment's HOME."""
    home = env.get("HOME") or str(Path.home())
    for field in PATH_FIELDS:
        raw = str(values.get(field) or WorkerConfig.model_fields[field].default)
        values[field] = Path(home + raw[1:] if raw.startswith("~") else raw)


def _notifiers_and_script(env: Mapping[str, str], values: dict[str, object],
                          warnings: Warnings) -> None:
    values["notifiers"] = _notifiers(env)
    script = values["send_matrix_script"]
    if "script" in values["notifiers"] and not (isinstance(script, Path) and os.access(
            script, os.X_OK) and script.is_file()):
        warnings.append(("notify_script_missing", {
            "script": str(script), "effect": "block notifications fail; set "
            "SEND_MATRIX_SCRIPT, another notifier, or NOTIFIERS=none"}))


def _agents(env: Mapping[str, str], values: dict[str, object], warnings: Warnings) -> None:
    """Agent names in task files (AGENT_MAP, the roster), their hosts, who may decide."""
    agent_map = _pairs("AGENT_MAP", env.get("AGENT_MAP", ""), "roster-name")
    if values.get("task_vocabulary") == "task-queue":
        agent_map = {**FIXED_AGENT_ROSTER_NAMES, **agent_map}
        roster = [n.strip() for n in env.get("TASK_ROSTER", "").split(",") if n.strip()]
        roster = roster or list(DEFAULT_ROSTER)
        strangers = sorted({name for name in agent_map.values() if name not in roster})
        if strangers:
            warnings.append(("agent_not_in_roster", {
                "targets": strangers, "roster": roster,
                "effect": "the dispatcher cannot launch them; an operator must pick them up"}))
    values["agent_map"] = agent_map
    values["agent_queues"] = _pairs("AGENT_QUEUES", env.get("AGENT_QUEUES", ""), "task-queue")
    values["file_approvers"] = frozenset(
        name.strip() for name in env.get("FILE_APPROVERS", "").split(",") if name.strip())


def _numbers(env: Mapping[str, str]) -> dict[str, object]:
    numbers: dict[str, object] = {**_parsed(env, DURATIONS, parse_duration),
                                  **_parsed(env, INTEGERS, _integer)}
    if env.get("AGENT_SILENCE", "").strip():
        numbers["agent_silence"] = env["AGENT_SILENCE"].strip()
    return numbers


def _check_combinations(config: WorkerConfig) -> None:
    """Settings that are each valid but do not go together."""
    if config.role == "host" and config.task_queue == config.workflow_task_queue:
        raise ConfigError(
            "WORKER_ROLE=host needs the host's own TASK_QUEUE (e.g. helm-build-claudebox), "
            f"not the workflow queue {config.workflow_task_queue!r} (WORKFLOW_TASK_QUEUE)")
    if "matrix" in config.notifiers and not (
        config.matrix_homeserver and config.matrix_room_id and config.matrix_access_token_file
    ):
        raise ConfigError(
            "NOTIFIERS includes matrix: set MATRIX_HOMESERVER, MATRIX_ROOM_ID and "
            "MATRIX_ACCESS_TOKEN_FILE"
        )
