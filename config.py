"""WorkerConfig: every setting of the worker, one pydantic-settings model per concern, read once
from the environment; each field names its variable, default, unit and check in one place."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import to_jsonable_python
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, SettingsError

from connection.settings import ClientSettings, load_client_settings
from contract import DEFAULT_TASK_DIR, TASK_DIR_VARIABLE
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
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
# main: runs the workflows (and every activity); host: only the activities that touch this
# host's task directory, polled on the host's own task queue (see README "Several hosts").
WorkerRole = Literal["main", "host"]
FileChannel = Literal["open", "closed"]
_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
T = TypeVar("T")
_ENV: ContextVar[Mapping[str, str]] = ContextVar("config_env")


def parse_duration(text: str) -> float:
    """Seconds for an operator-friendly duration ("90", "30s", "2h", "7d"), or ValueError."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 7d)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or ""]
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return seconds


def _seconds(value: object) -> object:
    """The one duration check of every duration setting (numbers pass: defaults, tests)."""
    return parse_duration(value) if isinstance(value, str) else value


def _words(value: object) -> object:
    """A comma list as its items (`a, b` -> ("a", "b")); anything else as it is."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _pairs(value: object, right: str) -> object:
    """`security-agent=security,claudebox=developer` -> {agent: RIGHT}."""
    if not isinstance(value, str):
        return value
    pairs = {}
    for item in _words(value):
        agent, sep, other = (side.strip() for side in item.partition("="))
        if not (sep and agent and other):
            raise ValueError(f"entries look like agent={right}, got {item!r}")
        pairs[agent] = other
    return pairs


def _home_path(value: object) -> Path:
    """A path with `~` as the given environment's HOME (tests give their own)."""
    raw = str(value)
    home = _ENV.get({}).get("HOME") or str(Path.home())
    return Path(home + raw[1:] if raw.startswith("~") else raw)


def _log_level(value: object) -> str:
    """A standard level name (any case, WARN, FATAL); anything else INFO (with a warning)."""
    level = LOG_LEVEL_ALIASES.get(str(value).upper(), str(value).upper())
    return level if level in get_args(LogLevel) else "INFO"


Seconds = Annotated[float, BeforeValidator(_seconds)]
HomePath = Annotated[Path, BeforeValidator(_home_path)]
Words = Annotated[tuple[str, ...], BeforeValidator(_words)]
Names = Annotated[frozenset[str], BeforeValidator(_words)]
Queues = Annotated[dict[str, str], BeforeValidator(lambda v: _pairs(v, "task-queue"))]


def var(name: str, default: Any, meaning: str, shown: str | None = None, **checks: Any) -> Any:
    """A setting: its variable, default, meaning (its README row) and checks, in one place."""
    extra = {"shown": shown} if shown is not None else None
    return Field(default, validation_alias=name, description=meaning, json_schema_extra=extra,
                 **checks)


class _GivenEnv(EnvSettingsSource):
    """The environment load_config was given (os.environ, or a test's own), set values only."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        """Blank counts as unset; lower-case names are never settings (nor field names)."""
        return {name: value.strip() for name, value in _ENV.get({}).items()
                if name.isupper() and value.strip()}


class EnvSettings(BaseSettings):
    """One concern's settings: read from the given environment only, lists as `a,b`."""

    # defer_build: a class gets its validator when first validated, so only what load_config
    # reads (WorkerSettings, Timings) holds one; the concerns and WorkerConfig never do.
    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, enable_decoding=False,
                                      validate_default=True, validate_by_name=True,
                                      extra="ignore", arbitrary_types_allowed=True,
                                      defer_build=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: Any, **_: Any) -> tuple[Any, ...]:
        """The given environment first, then what load_config computed (init values)."""
        return _GivenEnv(settings_cls), init_settings


class Worker(EnvSettings):
    """Queues, roles and capacity."""

    task_queue: str = var("TASK_QUEUE", "helm-build", "Temporal task queue (a host worker: "
                          "its host's own queue)", min_length=1)
    role: WorkerRole = var("WORKER_ROLE", "main", "`main` (workflows and every activity) or "
                           "`host` (only the activities of stages routed to this host)")
    workflow_task_queue: str = var("WORKFLOW_TASK_QUEUE", "helm-build", "host worker: the "
                                   "queue the workflows run on (the main worker's TASK_QUEUE)",
                                   min_length=1)
    agent_queues: Queues = var("AGENT_QUEUES", {}, "main worker: agent → its host's task queue, "
                               "e.g. `claudebox=helm-build-claudebox`; others stay on TASK_QUEUE")
    max_concurrent_activities: int = var(
        "MAX_CONCURRENT_ACTIVITIES", 200, "worker activity slots", ge=1, le=10000)
    max_cached_workflows: int = var("MAX_CACHED_WORKFLOWS", 500, "workflows kept in memory; "
                                    "parked ones beyond it are evicted, replayed on their next "
                                    "event", ge=0, le=100000)
    # Workflow tasks run under the GIL: a few at once keep both cores busy; the SDK's default
    # (a thread per concurrent task, up to 500) only adds threads, each with its own heap.
    max_concurrent_workflow_tasks: int = var(
        "MAX_CONCURRENT_WORKFLOW_TASKS", 4, "workflow tasks run at once (threads for them); "
        "under one interpreter lock more adds threads, not speed", ge=1, le=1000)
    index_builds: bool = var("INDEX_BUILDS", True, "use BuildName/TargetAgent search attributes "
                             "when the namespace has them")


class TaskFiles(EnvSettings):
    """The task directory, the audit folders and the task files' vocabulary."""

    task_dir: HomePath = var(TASK_DIR_VARIABLE, DEFAULT_TASK_DIR, "agents' task directory")
    audit_dir: HomePath = var("TEMPORAL_AUDIT_DIR", "~/.claude/comms/artifacts/audit-requests",
                              "audit requests and triage files")
    # v0.5's code default: audits it requested keep their triage file there.
    legacy_audit_dir: HomePath = var("LEGACY_AUDIT_DIR", "~/.claude/comms/artifacts", "where "
                                     "v0.5 asked for triage files (read for its builds)")
    summary_dir: HomePath = var(
        "SUMMARY_DIR", "~/repos/personal/agent-activity/workflows", "pipeline summaries")
    task_vocabulary: Vocabulary = var("TASK_VOCABULARY", "upstream", "`upstream` (v0.5's task "
                                      "files) or `task-queue` (the task-queue tooling's own)")
    task_roster: Words = var(
        "TASK_ROSTER", DEFAULT_ROSTER, "the dispatcher's roster (agents it launches unattended)")
    agent_map: dict[str, str] = var(
        "AGENT_MAP", None, "task-queue vocabulary: agent → roster name (given entries override "
        "the defaults); a target not in TASK_ROSTER: an `agent_not_in_roster` warning",
        shown="task-queue vocabulary: `{}`".format(
            ",".join(f"{agent}={name}" for agent, name in FIXED_AGENT_ROSTER_NAMES.items())))
    workflow_mode: WorkflowMode = var("TASK_WORKFLOW_MODE", "semi-auto", "task-queue "
                                      "vocabulary: `workflow_mode` of our tasks")
    task_priority: Priority = var(
        "TASK_PRIORITY", "normal", "task-queue vocabulary: `payload.priority`")
    file_approvers: Names = var("FILE_APPROVERS", frozenset(), "comma list of actors "
                                         "whose task-file decisions count (below); empty: any")
    # open (drop-in): task files decide blocks and complete stages through the tooling;
    # closed: they decide and complete nothing (Temporal and the task token only).
    file_channel: FileChannel = var("FILE_CHANNEL", "open", "`closed`: task files decide no "
                                    "block and complete no stage (Temporal and tokens only)")

    @field_validator("agent_map", mode="before")
    @classmethod
    def _agent_map(cls, value: object, info: ValidationInfo) -> object:
        """Task-queue vocabulary: our fixed agents' roster names, under the given entries."""
        given = _pairs(value or "", "roster-name")
        if info.data.get("task_vocabulary") == "task-queue":
            return {**FIXED_AGENT_ROSTER_NAMES, **given}
        return given


class Notifications(EnvSettings):
    """Where a parked build is announced."""

    matrix_room: str = var(
        "MATRIX_ROOM", "sysadmin", "room for the notification script", min_length=1)
    send_matrix_script: HomePath = var("SEND_MATRIX_SCRIPT", "~/scripts/send-matrix.sh",
                                       "called as `SCRIPT ROOM MESSAGE` (15 s limit)")
    ntfy_url: str = var("NTFY_URL", "", "ntfy endpoint; set = ntfy on")
    notifiers: tuple[str, ...] = var(
        "NOTIFIERS", None, "comma list of `script`, `ntfy`, `matrix`, or `none` (off); `script` "
        "without an executable SEND_MATRIX_SCRIPT: a `notify_script_missing` warning",
        shown="script (+ntfy if NTFY_URL)")
    matrix_homeserver: str = var("MATRIX_HOMESERVER", "", "Matrix backend: homeserver URL")
    matrix_room_id: str = var("MATRIX_ROOM_ID", "", "Matrix backend: room id")
    matrix_access_token_file: Path | None = var(
        "MATRIX_ACCESS_TOKEN_FILE", None, "Matrix backend: the file that holds its token")

    @field_validator("notifiers", mode="before")
    @classmethod
    def _notifiers(cls, value: object, info: ValidationInfo) -> object:
        """Unset: the script (and ntfy when NTFY_URL is set); `none`: off."""
        if value is None:
            return ("script", "ntfy") if info.data.get("ntfy_url") else ("script",)
        names = _words(value)
        unknown = [name for name in names if name not in NOTIFIER_NAMES]
        if unknown and names != ("none",):
            raise ValueError(f"unknown notifier(s) {unknown}; choose from {NOTIFIER_NAMES}")
        return () if names == ("none",) else names


class Telemetry(EnvSettings):
    """Logs, traces, metrics and the Web UI links."""

    log_level: Annotated[LogLevel, BeforeValidator(_log_level)] = var(
        "LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING (or WARN), ERROR, CRITICAL; anything else: "
        "INFO and a `log_level_unknown` warning")
    log_file: str | None = var("LOG_FILE", None, "extra JSON log file")
    otel_endpoint: str | None = var(
        "OTEL_EXPORTER_OTLP_ENDPOINT", None, "set: tracing + SDK metrics over OTLP/gRPC")
    otel_service_name: str = var("OTEL_SERVICE_NAME", "temporal-build-worker", "service name")
    prometheus_bind_address: str | None = var(
        "PROMETHEUS_BIND_ADDRESS", None, "e.g. 127.0.0.1:9464: SDK metrics for Prometheus")
    metrics_interval: Seconds = var(
        "METRICS_INTERVAL", 10, "how often SDK metrics are exported (OTLP, Prometheus)")
    temporal_ui_url: str = var(
        "TEMPORAL_UI_URL", "http://localhost:8233", "base of the links buildctl prints",
        shown="beside a local server: `http://localhost:<TEMPORAL_UI_PORT, else the gRPC port "
        "+ 1000>`, as `run.sh` starts it; else `http://localhost:<TEMPORAL_UI_PORT, else "
        "8233>`")


DURATION_FIELDS = tuple(name for name, field in StageTimings.model_fields.items()
                        if field.annotation in (float, float | None))
TIMING_MEANINGS = {
    **{stage.timeout: f"limit of the {stage.kind} stage (an agent's)" for stage in STAGES},
    "triage_retry_initial": "first wait for a missing triage file",
    "triage_retry_max": "longest wait between triage file retries",
    "triage_max_attempts": "triage file attempts before the build fails",
    "block_wait_timeout": "deadline for an operator decision",
    "block_check_interval": "how often parked builds' task files are checked",
    "agent_heartbeat_timeout": "a stage silent this long (no `complete_activity.py heartbeat`) "
                               "is re-offered or failed; unset: no liveness check",
    "agent_silence": "what a silent stage gets: `reoffer` (up to AGENT_REOFFERS) or `fail`",
    "agent_reoffers": "re-offers of a silent stage before it fails",
}


class Timings(EnvSettings, StageTimings):
    """StageTimings (recorded by each run) read from TIMEOUT_PREFAB, BLOCK_WAIT_TIMEOUT, ..."""

    model_config = SettingsConfigDict(alias_generator=lambda name: name.upper())

    @field_validator(*DURATION_FIELDS, mode="before")
    @classmethod
    def _durations(cls, value: object) -> object:
        """The stage limits and waits take the same forms as every other duration."""
        return _seconds(value)


class WorkerSettings(Telemetry, Notifications, TaskFiles, Worker):
    """Every worker setting the environment gives (the Temporal connection aside)."""


class WorkerConfig(WorkerSettings):
    """Validated settings; secrets are never fields here (only paths to them)."""

    client: ClientSettings
    timings: StageTimings = Field(default_factory=StageTimings)  # handed to each run
    # (event, details) to log once logging is set up: settings we accepted with a caveat.
    warnings: tuple[tuple[str, dict[str, object]], ...] = ()

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
        hidden = {"client", "warnings", "file_approvers"}
        shown = {name: getattr(self, name) for name in type(self).model_fields
                 if name not in hidden}
        data: dict[str, object] = to_jsonable_python(shown)  # model_dump would build a serializer
        data["file_approvers"] = sorted(self.file_approvers)
        data.update(self.client.describe())
        return data


def load_config(env: Mapping[str, str] | None = None) -> WorkerConfig:
    """Build the WorkerConfig from ENV (default os.environ); one ConfigError that names every
    invalid variable, one line each."""
    env = os.environ if env is None else env
    problems: list[str] = []
    token = _ENV.set(env)
    try:
        client = _client(env, problems)
        timings = _validated(Timings, problems)
        ui_url = _ui_url(env, client.address if client else "")
        settings = _validated(lambda: WorkerSettings(temporal_ui_url=ui_url), problems)
    finally:
        _ENV.reset(token)
    problems.extend(_combinations(settings) if settings else ())
    if problems or not (client and timings and settings):
        raise ConfigError(";\n".join(problems))
    config = WorkerConfig.model_construct(**dict(settings), client=client,
                                          timings=StageTimings(**timings.model_dump()))
    return config.model_copy(update={"warnings": _warnings(env, config)})


def _client(env: Mapping[str, str], problems: list[str]) -> ClientSettings | None:
    """The Temporal connection (temporalio.envconfig and Vault), or None and its problem."""
    try:
        return load_client_settings(env)
    except ConfigError as err:
        problems.append(str(err))
        return None


def _validated(build: Callable[[], T], problems: list[str]) -> T | None:
    """BUILD's model, or None and one line per invalid variable added to PROBLEMS."""
    try:
        return build()
    except ValidationError as err:
        problems.extend(f"{'.'.join(map(str, e['loc'])) or 'config'}: "
                        f"{e['msg'].removeprefix('Value error, ')}" for e in err.errors())
    except SettingsError as err:
        problems.append(str(err).splitlines()[0])
    return None


def _ui_url(env: Mapping[str, str], address: str) -> str:
    """The Web UI beside a local dev server: TEMPORAL_UI_PORT, else the gRPC port + 1000 (as
    scripts/run.sh and the Temporal CLI place it); elsewhere the documented default."""
    host, _, port = address.rpartition(":")
    ui_port = env.get("TEMPORAL_UI_PORT", "").strip()
    if host.strip("[]") in ("localhost", "127.0.0.1", "::1") and port.isdigit():
        return f"http://localhost:{ui_port if ui_port.isdigit() else int(port) + 1000}"
    return f"http://localhost:{ui_port}" if ui_port.isdigit() else "http://localhost:8233"


def _warnings(env: Mapping[str, str], config: WorkerConfig) -> tuple[tuple[str, dict], ...]:
    """Settings accepted with a caveat, said once at start (after logging is set up)."""
    warnings: list[tuple[str, dict[str, object]]] = []
    level = env.get("LOG_LEVEL", "").strip()
    if level and _log_level(level) == "INFO" and level.upper() != "INFO":
        warnings.append(("log_level_unknown", {"value": env["LOG_LEVEL"][:40], "using": "INFO"}))
    if config.client.vault_missing:
        warnings.append(("vault_partial", {"missing": list(config.client.vault_missing),
                                           "effect": "Vault mTLS off (all three needed)"}))
    script = config.send_matrix_script
    if "script" in config.notifiers and not (os.access(script, os.X_OK) and script.is_file()):
        warnings.append(("notify_script_missing", {
            "script": str(script), "effect": "block notifications fail; set "
            "SEND_MATRIX_SCRIPT, another notifier, or NOTIFIERS=none"}))
    strangers = sorted({name for name in config.agent_map.values()
                        if name not in config.task_roster})
    if config.task_vocabulary == "task-queue" and strangers:
        warnings.append(("agent_not_in_roster", {
            "targets": strangers, "roster": list(config.task_roster),
            "effect": "the dispatcher cannot launch them; an operator must pick them up"}))
    return tuple(warnings)


def _combinations(config: WorkerSettings) -> list[str]:
    """Settings that are each valid but do not go together, one line each."""
    problems = []
    if config.role == "host" and config.task_queue == config.workflow_task_queue:
        problems.append(
            "WORKER_ROLE=host needs the host's own TASK_QUEUE (e.g. helm-build-claudebox), "
            f"not the workflow queue {config.workflow_task_queue!r} (WORKFLOW_TASK_QUEUE)")
    if "matrix" in config.notifiers and not (
            config.matrix_homeserver and config.matrix_room_id and config.matrix_access_token_file):
        problems.append("NOTIFIERS includes matrix: set MATRIX_HOMESERVER, MATRIX_ROOM_ID and "
                        "MATRIX_ACCESS_TOKEN_FILE")
    return problems
