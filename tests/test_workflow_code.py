"""The workflow modules are passed through the sandbox (imported once, not per run), so the
sandbox no longer polices their calls at run time: this scan does, before anything runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = sorted((Path(__file__).resolve().parent.parent / "workflows").glob("*.py"))
# Calls that differ between an execution and its replay, or do I/O, with their replacements.
FORBIDDEN_ATTRIBUTES = {
    ("datetime", "now"): "workflow.now()", ("datetime", "utcnow"): "workflow.now()",
    ("datetime", "today"): "workflow.now()", ("date", "today"): "workflow.now()",
    ("time", "time"): "workflow.now()", ("time", "monotonic"): "workflow.now()",
    ("time", "sleep"): "workflow.sleep / asyncio.sleep", ("uuid", "uuid4"): "workflow.uuid4()",
    ("uuid", "uuid1"): "workflow.uuid4()", ("os", "environ"): "settings from an activity",
    ("os", "getenv"): "settings from an activity",
}
FORBIDDEN_MODULES = {"random", "subprocess", "threading", "socket", "httpx", "requests",
                     "os", "shutil", "pathlib", "tempfile"}
FORBIDDEN_NAMES = {"open", "print", "input"}


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            replacement = FORBIDDEN_ATTRIBUTES.get((node.value.id, node.attr))
            if replacement:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr} "
                             f"(use {replacement})")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in FORBIDDEN_NAMES:
            found.append(f"line {node.lineno}: {node.func.id}()")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names]
            found += [f"line {node.lineno}: import {name}" for name in names
                      if name.split(".")[0] in FORBIDDEN_MODULES]
    return found


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_modules_make_no_nondeterministic_calls(path: Path):
    assert violations(path.read_text()) == []


def test_the_scan_catches_what_the_sandbox_would():
    bad = ("import random\nfrom datetime import datetime\n"
           "def run():\n    datetime.now()\n    open('x')\n    time.sleep(1)\n")
    assert len(violations(bad)) == 4
