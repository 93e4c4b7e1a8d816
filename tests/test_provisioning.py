"""scripts/ensure-temporal.sh: reuse the cache without Go; fail clearly when nothing works."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

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
