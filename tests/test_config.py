"""load_config: defaults, overrides, and one readable ConfigError for bad values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo

import config as config_module
import connection.settings
from config import load_config
from exceptions import ConfigError, Exit

REPO = Path(__file__).resolve().parent.parent


def other_warnings(config) -> tuple:
    """The config's warnings beside the missing notification script (tests have none)."""
    return tuple(w for w in config.warnings if w[0] != "notify_script_missing")


def base_env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path), "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml")}


def test_defaults_match_the_contract(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(base_env(tmp_path))
    assert config.client.address == "localhost:7233"
    assert config.client.namespace == "default"
    assert config.task_queue == "helm-build" and config.matrix_room == "sysadmin"
    assert config.task_dir == tmp_path / ".claude/task-queue"
    assert config.audit_dir == tmp_path / ".claude/comms/artifacts/audit-requests"
    assert config.summary_dir == tmp_path / "repos/personal/agent-activity/workflows"
    assert config.send_matrix_script == tmp_path / "scripts/send-matrix.sh"
    timings = config.timings
    assert (timings.timeout_prefab, timings.timeout_implement, timings.timeout_audit,
            timings.timeout_fixes, timings.timeout_close, timings.timeout_phase) == (
        2 * 3600, 4 * 3600, 4 * 3600, 2 * 3600, 2 * 3600, 24 * 3600)  # README's limits
    assert (timings.triage_retry_initial, timings.triage_retry_max) == (120, 900)
    assert timings.timeout_implement == 4 * 3600 and timings.block_wait_timeout == 7 * 86400
    assert timings.block_check_interval == 30 and config.notifiers == ("script",)
    assert config.max_concurrent_activities == 200 and config.max_cached_workflows == 500
    assert timings.triage_max_attempts == 5 and config.index_builds
    assert config.otel_service_name == "temporal-build-worker"


def test_the_remaining_documented_defaults(tmp_path, monkeypatch):
    """The defaults configuration.md states for these, as the worker loads them (#37.3)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(base_env(tmp_path))
    assert config.max_concurrent_workflow_tasks == 4
    assert config.legacy_audit_dir == tmp_path / ".claude/comms/artifacts"
    assert config.workflow_mode == "semi-auto" and config.task_style().workflow_mode == "semi-auto"
    assert (config.timings.agent_silence, config.timings.agent_reoffers) == ("reoffer", 2)


def test_overrides(tmp_path):
    env = {**base_env(tmp_path), "TEMPORAL_ADDRESS": "temporal:7233",
           "TEMPORAL_NAMESPACE": "builds", "TASK_QUEUE_DIR": str(tmp_path / "q"),
           "NTFY_URL": "http://ntfy/x", "BLOCK_WAIT_TIMEOUT": "2h", "LOG_LEVEL": "debug"}
    config = load_config(env)
    assert config.client.address == "temporal:7233" and config.client.namespace == "builds"
    assert config.task_dir == tmp_path / "q" and config.notifiers == ("script", "ntfy")
    assert config.timings.block_wait_timeout == 7200 and config.log_level == "DEBUG"


def test_profile_file_is_honoured(tmp_path):
    profile = tmp_path / "temporal.toml"
    profile.write_text('[profile.prod]\naddress = "prod:7233"\nnamespace = "prod-ns"\n')
    env = {"HOME": str(tmp_path), "TEMPORAL_CONFIG_FILE": str(profile),
           "TEMPORAL_PROFILE": "prod"}
    config = load_config(env)
    assert (config.client.address, config.client.namespace) == ("prod:7233", "prod-ns")


@pytest.mark.parametrize("name,value,fragment", [
    ("BLOCK_CHECK_INTERVAL", "soon", "BLOCK_CHECK_INTERVAL"),
    ("TIMEOUT_IMPLEMENT", "0", "TIMEOUT_IMPLEMENT"),
    ("MAX_CONCURRENT_ACTIVITIES", "many", "MAX_CONCURRENT_ACTIVITIES"),
    ("TEMPORAL_REQUIRE_TLS", "maybe", "TEMPORAL_REQUIRE_TLS"),
    ("NOTIFIERS", "pager", "NOTIFIERS: unknown notifier"),
    ("METRICS_INTERVAL", "often", "METRICS_INTERVAL"),
    ("AGENT_HEARTBEAT_TIMEOUT", "-5m", "AGENT_HEARTBEAT_TIMEOUT"),
    ("INDEX_BUILDS", "maybe", "INDEX_BUILDS"),
    ("NOTIFIERS", "matrix", "MATRIX_HOMESERVER"),
    ("TASK_VOCABULARY", "native", "TASK_VOCABULARY"),
    ("TASK_WORKFLOW_MODE", "yolo", "TASK_WORKFLOW_MODE"),
    ("TASK_PRIORITY", "asap", "TASK_PRIORITY"),
    ("AGENT_MAP", "security-agent", "AGENT_MAP"),
    ("TRIAGE_MAX_ATTEMPTS", "lots", "TRIAGE_MAX_ATTEMPTS"),
    ("AGENT_QUEUES", "claudebox=", "AGENT_QUEUES"),
    ("WORKER_ROLE", "sidecar", "WORKER_ROLE"),
    ("WORKER_ROLE", "host", "own TASK_QUEUE"),  # a host on the workflow queue
])
def test_bad_values_raise_one_line(tmp_path, name, value, fragment):
    with pytest.raises(ConfigError) as caught:
        load_config({**base_env(tmp_path), name: value})
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_missing_secret_id_file_is_config_error(tmp_path):
    env = {**base_env(tmp_path), "VAULT_ADDR": "http://v", "VAULT_ROLE_ID": "r",
           "VAULT_SECRET_ID_FILE": str(tmp_path / "nope")}
    with pytest.raises(ConfigError, match="VAULT_SECRET_ID_FILE"):
        load_config(env)


def test_describe_has_no_secrets(tmp_path):
    secret = tmp_path / "sid"
    secret.write_text("s3cr3t-secret-id")
    env = {**base_env(tmp_path), "VAULT_ADDR": "http://v", "VAULT_ROLE_ID": "role",
           "VAULT_SECRET_ID_FILE": str(secret), "TEMPORAL_API_KEY": "api-key-value"}
    text = json.dumps(load_config(env).describe())
    assert "s3cr3t-secret-id" not in text and "api-key-value" not in text
    assert '"tls": "vault"' in text


@pytest.mark.parametrize("value,level", [("warn", "WARNING"), ("WARNING", "WARNING"),
                                         ("info", "INFO"), ("Info", "INFO"),
                                         ("critical", "CRITICAL"), ("FATAL", "CRITICAL"),
                                         ("error", "ERROR"), ("Debug", "DEBUG")])
def test_every_standard_log_level_name_is_accepted(tmp_path, value, level):
    config = load_config({**base_env(tmp_path), "LOG_LEVEL": value})
    assert config.log_level == level and other_warnings(config) == ()


def test_unknown_log_level_is_info_with_a_warning(tmp_path):
    config = load_config({**base_env(tmp_path), "LOG_LEVEL": "LOUD"})
    assert config.log_level == "INFO"
    assert other_warnings(config) == (("log_level_unknown", {"value": "LOUD", "using": "INFO"}),)


@pytest.mark.parametrize("present", [("VAULT_ADDR",), ("VAULT_ADDR", "VAULT_ROLE_ID"),
                                     ("VAULT_SECRET_ID_FILE",)])
def test_partial_vault_settings_mean_no_vault_and_a_warning(tmp_path, present):
    values = {"VAULT_ADDR": "http://vault:8200", "VAULT_ROLE_ID": "r",
              "VAULT_SECRET_ID_FILE": str(tmp_path / "absent")}
    config = load_config({**base_env(tmp_path), **{k: values[k] for k in present}})
    assert config.client.vault is None
    missing = [name for name in values if name not in present]
    assert other_warnings(config) == (("vault_partial", {
        "missing": missing, "effect": "Vault mTLS off (all three needed)"}),)


def test_task_queue_vocabulary_settings(tmp_path):
    config = load_config({**base_env(tmp_path), "TASK_VOCABULARY": "task-queue",
                          "AGENT_MAP": "security-agent=security, claudebox=developer",
                          "TASK_WORKFLOW_MODE": "auto", "TASK_PRIORITY": "high",
                          "FILE_APPROVERS": "alice,bob"})
    style = config.task_style()
    assert style.vocabulary == "task-queue" and style.awaiting_decision == "pending-approval"
    assert style.agent_map == {"security-agent": "security", "claudebox": "developer"}
    assert (style.workflow_mode, style.priority) == ("auto", "high")
    assert config.file_approvers == frozenset({"alice", "bob"})
    assert load_config(base_env(tmp_path)).task_style().awaiting_decision == "input-required"


def test_routing_and_roles(tmp_path):
    main = load_config({**base_env(tmp_path),
                        "AGENT_QUEUES": "claudebox=helm-build-box, security-agent=helm-build-sec"})
    assert main.role == "main" and main.build_queue == "helm-build"
    assert main.agent_queues == {"claudebox": "helm-build-box",
                                 "security-agent": "helm-build-sec"}
    host = load_config({**base_env(tmp_path), "WORKER_ROLE": "host",
                        "TASK_QUEUE": "helm-build-box", "WORKFLOW_TASK_QUEUE": "builds"})
    assert (host.role, host.task_queue, host.build_queue) == ("host", "helm-build-box",
                                                              "builds")
    assert load_config(base_env(tmp_path)).agent_queues == {}  # one host: nothing routed


def test_notifiers_none_turns_them_off_without_a_warning(tmp_path):
    config = load_config({**base_env(tmp_path), "NOTIFIERS": "none"})
    assert config.notifiers == () and config.warnings == ()


def test_a_missing_notification_script_is_said_once_at_start(tmp_path):
    config = load_config(base_env(tmp_path))
    (event, details), = config.warnings
    assert event == "notify_script_missing" and "NOTIFIERS=none" in details["effect"]
    script = tmp_path / "scripts" / "send-matrix.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert load_config(base_env(tmp_path)).warnings == ()


def test_task_queue_vocabulary_maps_fixed_agents_to_roster_names(tmp_path):
    env = {**base_env(tmp_path), "TASK_VOCABULARY": "task-queue", "NOTIFIERS": "none"}
    config = load_config(env)
    assert config.agent_map == {"security-agent": "security", "claudebox": "developer"}
    assert config.warnings == ()
    config = load_config({**env, "AGENT_MAP": "security-agent=sec-bot,dev=developer"})
    assert config.agent_map["security-agent"] == "sec-bot"
    (event, details), = config.warnings
    assert event == "agent_not_in_roster" and details["targets"] == ["sec-bot"]
    config = load_config({**env, "TASK_ROSTER": "sec-bot,developer",
                          "AGENT_MAP": "security-agent=sec-bot"})
    assert config.warnings == ()
    assert load_config({**base_env(tmp_path), "NOTIFIERS": "none"}).agent_map == {}


def test_standard_tls_settings_and_their_precedence_after_vault(tmp_path):
    from connection.tls import tls_config

    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text(f"-----BEGIN {name}-----\n")
    tls = {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tmp_path / "ca.pem"),
           "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "cert.pem"),
           "TEMPORAL_TLS_CLIENT_KEY_PATH": str(tmp_path / "key.pem")}
    static = load_config({**base_env(tmp_path), **tls, "TEMPORAL_API_KEY": "k-123"}).client
    assert static.describe()["tls"] == "static" and static.describe()["api_key_set"]
    config = tls_config(static)
    assert config.client_cert.startswith(b"-----BEGIN cert.pem")
    assert config.server_root_ca_cert.startswith(b"-----BEGIN ca.pem")
    secret = tmp_path / "sid"
    secret.write_text("sid")
    vault = {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_ROLE_ID": "r",
             "VAULT_SECRET_ID_FILE": str(secret)}
    both = load_config({**base_env(tmp_path), **tls, **vault}).client
    assert both.describe()["tls"] == "vault"  # Vault first, then the standard settings
    profile = tmp_path / "temporal.toml"
    profile.write_text('[profile.tls]\naddress = "secure:7233"\napi_key = "from-profile"\n')
    named = load_config({**base_env(tmp_path), "TEMPORAL_CONFIG_FILE": str(profile),
                         "TEMPORAL_PROFILE": "tls"}).client
    assert named.address == "secure:7233" and named.connect.get("api_key") == "from-profile"



# `given`, not `env`: a parameter named like the server fixture `env` made this a server test.
@pytest.mark.parametrize("given,url", [
    ({}, "http://localhost:8233"),
    ({"TEMPORAL_ADDRESS": "127.0.0.1:7300"}, "http://localhost:8300"),
    ({"TEMPORAL_ADDRESS": "[::1]:7300"}, "http://localhost:8300"),
    ({"TEMPORAL_ADDRESS": "localhost:7300", "TEMPORAL_UI_PORT": "9000"},
     "http://localhost:9000"),
    ({"TEMPORAL_ADDRESS": "localhost:7300", "TEMPORAL_UI_PORT": "soon"},
     "http://localhost:8300"),
    ({"TEMPORAL_ADDRESS": "temporal.example:7300"}, "http://localhost:8233"),
    ({"TEMPORAL_ADDRESS": "127.0.0.1:7300", "TEMPORAL_UI_URL": "https://ui.example"},
     "https://ui.example"),
])
def test_the_web_ui_link_follows_the_server_run_sh_starts(given, url):
    """#35.12: buildctl's links point where run.sh puts the Web UI for that address: beside a
    local server TEMPORAL_UI_PORT, else its gRPC port + 1000; else the default (#37.2)."""
    env = {"TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml", **given}
    assert load_config(env).temporal_ui_url == url


def test_the_matrix_notifier_needs_all_three_of_its_settings(tmp_path):
    """#37.2: any one of MATRIX_HOMESERVER, MATRIX_ROOM_ID, MATRIX_ACCESS_TOKEN_FILE missing is
    exit 6 naming them; all three set is accepted."""
    three = {"MATRIX_HOMESERVER": "https://matrix.example", "MATRIX_ROOM_ID": "!room:example",
             "MATRIX_ACCESS_TOKEN_FILE": str(tmp_path / "token")}
    env = {**base_env(tmp_path), "NOTIFIERS": "matrix"}
    assert load_config({**env, **three}).notifiers == ("matrix",)
    for missing in three:
        given = {name: value for name, value in three.items() if name != missing}
        with pytest.raises(ConfigError, match="NOTIFIERS includes matrix"):
            load_config({**env, **given})


def test_a_blank_variable_is_its_default(tmp_path):
    """#37.2: a variable set to blanks counts as unset (as systemd and PM2 files leave them)."""
    config = load_config({**base_env(tmp_path), "TIMEOUT_AUDIT": "  ", "TASK_PRIORITY": ""})
    assert config.timings.timeout_audit == 4 * 3600
    assert config.task_priority == "normal"


def test_a_notification_script_that_is_a_directory_is_missing(tmp_path):
    """#37.2: `script` needs an executable file: an executable directory there is warned of."""
    script = tmp_path / "scripts" / "send-matrix.sh"
    script.mkdir(parents=True)
    (event, details), = load_config(base_env(tmp_path)).warnings
    assert event == "notify_script_missing" and details["script"] == str(script)


def test_every_invalid_variable_is_named_at_once_one_line_each(tmp_path):
    """#38.2: an operator fixes every bad variable in one go, not one per restart."""
    bad = {"TEMPORAL_REQUIRE_TLS": "maybe", "TIMEOUT_AUDIT": "soon", "TASK_PRIORITY": "asap",
           "MAX_CACHED_WORKFLOWS": "-1", "NOTIFIERS": "pager", "METRICS_INTERVAL": "0"}
    with pytest.raises(ConfigError) as caught:
        load_config({**base_env(tmp_path), **bad})
    lines = str(caught.value).splitlines()
    assert len(lines) == len(bad)
    for name in bad:
        assert len([line for line in lines if line.startswith(name)]) == 1, (name, lines)
    # settings each valid that do not go together are named beside the others
    with pytest.raises(ConfigError) as caught:
        load_config({**base_env(tmp_path), "TIMEOUT_AUDIT": "soon", "WORKER_ROLE": "host"})
    assert [line[:13] for line in str(caught.value).splitlines()] == [
        "TIMEOUT_AUDIT", "WORKER_ROLE=h"]


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("7d", 7 * 86400),
                                          ("45", 45), ("1.5h", 5400)])
def test_every_duration_variable_takes_the_same_forms(tmp_path, text, seconds):
    """One validator for every duration: the stage limits, the waits, the metrics period."""
    stages = [f"TIMEOUT_{name}" for name in ("PREFAB", "IMPLEMENT", "AUDIT", "FIXES", "CLOSE",
                                             "PHASE")]
    names = [*stages, "TRIAGE_RETRY_INITIAL", "TRIAGE_RETRY_MAX", "BLOCK_WAIT_TIMEOUT",
             "BLOCK_CHECK_INTERVAL", "AGENT_HEARTBEAT_TIMEOUT"]
    config = load_config({**base_env(tmp_path), **dict.fromkeys(names, text),
                          "METRICS_INTERVAL": text})
    values = [getattr(config.timings, name.lower()) for name in names]
    assert [*values, config.metrics_interval] == [seconds] * (len(names) + 1)


def _duration(seconds: float) -> str:
    """A default duration as the README writes it (the largest whole unit)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _shown(name: str, field: FieldInfo) -> str:
    """The default cell of a setting's README row."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    default = field.default
    if "shown" in extra:
        return str(extra["shown"])
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return "1" if default else "0"
    if name in config_module.DURATION_FIELDS or config_module.Seconds.__metadata__[0] in (
            field.metadata):
        return _duration(default)
    if isinstance(default, tuple):
        return ",".join(default)
    return str(default) if default or default == 0 else "(empty)"


def configuration_table() -> list[str]:
    """The README's configuration table as the models say it (connection rows first)."""
    rows = [f"| {name} | {default} | {meaning} |"
            for name, default, meaning in connection.settings.ENV_ROWS]
    for concern in (config_module.Worker, config_module.TaskFiles,
                    config_module.Notifications, config_module.Telemetry,
                    config_module.Timings):
        for name, field in concern.model_fields.items():
            meaning = field.description or config_module.TIMING_MEANINGS[name]
            rows.append(f"| {field.validation_alias or field.alias} | {_shown(name, field)} "
                        f"| {meaning} |")
    return ["| variable | default | meaning |", "|---|---|---|", *rows]


def test_the_readme_configuration_table_is_the_models():
    """#38.2: every variable of the models has its README row with the same default, and the
    table has no other; the page may move (README or docs/), the table goes with it."""
    header = "| variable | default | meaning |"
    pages = [page for page in (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
             if header in page.read_text()]
    assert len(pages) == 1, f"one page holds the configuration table, found {pages}"
    lines = pages[0].read_text().splitlines()
    start = lines.index(header)
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")),
               len(lines))
    expected = configuration_table()
    assert lines[start:end] == expected, "the table as the models say it:\n" + "\n".join(
        expected)


@pytest.mark.parametrize("program,args", [("worker.py", ()), ("buildctl.py", ("list",))])
def test_the_worker_and_buildctl_exit_6_naming_every_bad_variable(tmp_path, program, args):
    """As operators start them: exit 6 (Exit.CONFIG), each bad variable named, no traceback."""
    bad = {"TIMEOUT_AUDIT": "soon", "TASK_PRIORITY": "asap", "NOTIFIERS": "pager"}
    env = {**base_env(tmp_path), "PATH": os.environ.get("PATH", ""), **bad}
    done = subprocess.run([sys.executable, str(REPO / program), *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == Exit.CONFIG and "Traceback" not in output, output
    assert all(name in output for name in bad), output


def test_only_the_models_load_config_validates_build_a_validator(tmp_path):
    """A fresh worker process reading its settings builds validators for WorkerSettings and
    Timings alone: the concerns and WorkerConfig (assembled, never validated) stay unbuilt,
    also once describe() has run (bench/NOTES.md, 2026-12-06: ~0.3 MB)."""
    env = {"HOME": str(tmp_path), "TEMPORAL_CONFIG_FILE": "/nonexistent"}
    code = f"""if True:
        import config
        loaded = config.load_config({env!r})
        loaded.describe()
        models = (config.Worker, config.TaskFiles, config.Notifications, config.Telemetry,
                  config.WorkerSettings, config.Timings, config.WorkerConfig)
        print(" ".join(m.__name__ for m in models if m.__pydantic_complete__))"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["WorkerSettings", "Timings"]


def test_describe_renders_every_setting_as_a_dump_would(tmp_path):
    config = load_config({**base_env(tmp_path), "FILE_APPROVERS": "b,a", "AGENT_QUEUES": "x=q"})
    dumped = config.model_dump(exclude={"client", "warnings", "file_approvers"}, mode="json")
    described = config.describe()
    assert list(described)[:len(dumped)] == list(dumped)
    assert {name: described[name] for name in dumped} == dumped
    assert described["file_approvers"] == ["a", "b"] and described["agent_queues"] == {"x": "q"}
