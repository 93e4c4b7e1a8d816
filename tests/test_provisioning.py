"""Provisioning scripts: ensure-temporal.sh and ensure-jaeger.sh reuse the cache without Go and
fail clearly when nothing works; setup.sh says each step; run.sh keeps one state directory per
address."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NO_GO_PATH = "/usr/bin:/bin"


def fake_checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "ensure-temporal.sh", root / "scripts")
    return root


def run(root: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": NO_GO_PATH, "HOME": str(cache.parent), "XDG_CACHE_HOME": str(cache)}
    return subprocess.run(["bash", str(root / "scripts" / "ensure-temporal.sh")], env=env,
                          capture_output=True, text=True, check=False)


@pytest.mark.server
def test_project_cli_is_reused_without_go():
    assert shutil.which("go", path=NO_GO_PATH) is None
    env = {"PATH": NO_GO_PATH, "HOME": os.environ.get("HOME", "/root")}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-temporal.sh")], env=env,
                            capture_output=True, text=True, check=True)
    path = Path(result.stdout.strip())
    assert path == ROOT / ".tools" / "bin" / "temporal" and os.access(path, os.X_OK)
    assert "building" not in result.stderr


def test_cached_binary_is_linked_without_go(tmp_path):
    root = fake_checkout(tmp_path)
    cache = tmp_path / "cache"
    cached = cache / "temporal-build-worker" / "temporal-v1.5.1"
    cached.parent.mkdir(parents=True)
    cached.write_text("#!/bin/sh\necho fake\n")
    cached.chmod(0o755)
    result = run(root, cache)
    assert result.returncode == 0, result.stderr
    linked = root / ".tools" / "bin" / "temporal"
    assert result.stdout.strip() == str(linked) and linked.resolve() == cached


def test_no_cli_and_no_go_fails_with_install_hint(tmp_path):
    result = run(fake_checkout(tmp_path), tmp_path / "empty-cache")
    assert result.returncode == 1
    assert "go install github.com/temporalio/cli/cmd/temporal@v1.5.1" in result.stderr
    assert "https://docs.temporal.io/cli" in result.stderr


def _where(**env: str) -> dict[str, str]:
    """What `run.sh --where` says for ENV: address, state, pid file, Web UI."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run.sh"), "--where"],
                            env={"PATH": os.environ["PATH"], **env}, capture_output=True,
                            text=True, check=True)
    return dict(line.split(": ", 1) for line in result.stdout.splitlines())


def test_run_sh_keeps_one_state_directory_per_address():
    default, other = _where(), _where(TEMPORAL_ADDRESS="localhost:7300")
    assert default["state"] == str(ROOT / ".state" / "localhost_7233")
    assert other["state"] == str(ROOT / ".state" / "localhost_7300")
    assert default["pid file"] != other["pid file"]
    assert (default["Web UI"], other["Web UI"]) == ("http://localhost:8233",
                                                    "http://localhost:8300")
    assert _where(TEMPORAL_UI_PORT="9000")["Web UI"] == "http://localhost:9000"


def test_run_sh_refuses_an_address_without_a_port():
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run.sh"), "--where"],
                            env={"PATH": os.environ["PATH"], "TEMPORAL_ADDRESS": "localhost"},
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == ("run.sh: error: TEMPORAL_ADDRESS=localhost is not "
                                     "host:port")


def test_setup_sh_says_each_step(tmp_path):
    """In a checkout whose venv borrows this interpreter (nothing to install: no network, the
    shared venv untouched): a line per step, the first time and when all is done, and the
    checkout's own modules compiled for both the CLIs and the worker."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", root / "scripts")
    (root / "requirements.txt").write_text("# nothing to install\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "lib").mkdir()
    # The checkout's python: the project venv's interpreter, except that pip is a stand-in
    # that installs nothing (a venv made from a distribution's python3 refuses any install
    # into that python, PEP 668, and the shared venv must stay as it is).
    python = root / ".venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\n[ "$1 $2" = "-m pip" ] && exit 0\n'
                      f'exec {ROOT / ".venv" / "bin" / "python"} "$@"\n')
    python.chmod(0o755)

    def said(*args: str) -> list[str]:
        result = subprocess.run(["bash", str(root / "scripts" / "setup.sh"), *args],
                                capture_output=True, text=True, check=True,
                                env={"PATH": os.environ["PATH"]})
        return [line.split(" (", 1)[0].split(": ", 1)[1] for line in result.stdout.splitlines()]

    (root / "cli.py").write_text("print('hello')\n")  # one of the project's own modules
    own = "compiling the project's bytecode"
    assert said() == [f"venv: {root / '.venv'}", "installing requirements.txt with pip",
                      "compiling the libraries' bytecode for python -OO", own,
                      "ready: run ./scripts/run.sh"]
    assert said() == [f"venv: {root / '.venv'}", "requirements.txt: installed already",
                      "bytecode for -OO: compiled already", own, "ready: run ./scripts/run.sh"]
    # run.sh goes on to start the worker itself: no "ready: run ./scripts/run.sh" then
    assert said("--for-run")[-1] == own
    # the agents' CLI (plain python3) and the worker (-OO) each find theirs, none of the venv's
    compiled = sorted(path.name for path in (root / "__pycache__").iterdir())
    assert [name.split(".", 1)[1] for name in compiled] == [
        f"{sys.implementation.cache_tag}.opt-2.pyc", f"{sys.implementation.cache_tag}.pyc"]


def _ensure_jaeger(cache: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": NO_GO_PATH, "HOME": str(cache.parent), "XDG_CACHE_HOME": str(cache)}
    return subprocess.run(["bash", str(ROOT / "scripts" / "ensure-jaeger.sh")], env=env,
                          capture_output=True, text=True, check=False)


def test_a_cached_jaeger_is_used_without_go(tmp_path):
    cached = tmp_path / "cache" / "temporal-build-worker" / "jaeger-v1.75.0" / "jaeger"
    cached.parent.mkdir(parents=True)
    cached.write_text("#!/bin/sh\n")
    cached.chmod(0o755)
    result = _ensure_jaeger(tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(cached) and "building" not in result.stderr


def test_no_jaeger_and_no_go_fails_in_plain_words(tmp_path):
    result = _ensure_jaeger(tmp_path / "empty-cache")
    assert result.returncode == 1 and result.stdout == ""
    assert "need Jaeger v1.75.0, built with Go, and Go was not" in result.stderr
    assert not (tmp_path / "empty-cache" / "temporal-build-worker").exists()


def test_the_jaeger_fixture_fails_without_a_jaeger(tmp_path, monkeypatch):
    """No binary and no way to build one is a failure naming the fix, never a skip."""
    from testbed.jaeger import jaeger_bin

    monkeypatch.delenv("JAEGER_BIN", raising=False)
    monkeypatch.delenv("TEMPORAL_CLI_CACHE", raising=False)
    monkeypatch.setenv("PATH", NO_GO_PATH)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(RuntimeError) as raised:
        jaeger_bin()
    assert "set JAEGER_BIN" in str(raised.value) and "Go was not" in str(raised.value)
