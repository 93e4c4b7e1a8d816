"""A static scan of workflows/, beside the sandbox the tests run workflows in (tests/sandbox.py).

The sandbox polices, at run time, every helper a workflow calls, but only the branches a
recorded history or a test takes, and it lets some calls by: `print`, and a clock read through
an instance (`started.now()`: a method of the real datetime type, which no proxy wraps). This
scan reads every line of workflows/, taken or not, before anything runs.

It resolves every name to the module it came from (imports, `as` aliases, `from` imports) and
bans by module, not by spelling: whatever a person writes for `time.time_ns()`, it resolves to
`time.*`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = sorted((Path(__file__).resolve().parent.parent / "workflows").rglob("*.py"))
# Every member of these modules differs between an execution and its replay, or does I/O.
BANNED_MODULES = {"time", "random", "uuid", "os", "sys", "subprocess", "threading", "socket",
                  "httpx", "requests", "shutil", "pathlib", "tempfile", "io", "secrets",
                  "urllib", "http", "select", "signal", "multiprocessing", "concurrent"}
# Members of otherwise allowed modules that read the clock (use workflow.now()).
BANNED_MEMBERS = {"datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
                  "datetime.datetime.fromtimestamp", "datetime.date.today", "datetime.now",
                  "datetime.utcnow", "datetime.today", "asyncio.get_event_loop",
                  "asyncio.new_event_loop"}
BANNED_BUILTINS = {"open", "print", "input", "exec", "eval", "__import__", "breakpoint"}
# Clock reads by method name, whatever they are called on (a class or an instance of one),
# except the workflow's own clock.
CLOCK_METHODS = {"now", "utcnow", "today"}
WORKFLOW_CLOCK = "temporalio.workflow.now"


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it stands for, from every import in the module."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                names[local] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.AST) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *parts]
    return None


def _banned(full: str) -> bool:
    root = full.split(".")[0]
    return root in BANNED_MODULES or full in BANNED_MEMBERS or any(
        full.startswith(member + ".") for member in BANNED_MEMBERS)


def _clock_reads(tree: ast.AST, names: dict[str, str]) -> set[str]:
    """Each call of a clock method that is not the workflow's clock, as `line N: what`."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in CLOCK_METHODS:
            parts = _dotted(node.func)
            if parts and parts[0] in names:
                parts = [names[parts[0]], *parts[1:]]
            if ".".join(parts or []) != WORKFLOW_CLOCK:
                found.add(f"line {node.lineno}: .{node.func.attr}()")
    return found


def violations(source: str) -> list[str]:
    """Each use of a banned module, member or builtin, as `line N: what`."""
    tree = ast.parse(source)
    names = _aliases(tree)
    found = _clock_reads(tree, names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [f"{node.module}.{alias.name}" for alias in node.names
                             if node.module and not node.level])
            found |= {f"line {node.lineno}: import {m}" for m in modules if _banned(m)}
        elif isinstance(node, ast.Attribute | ast.Name) and isinstance(
                getattr(node, "ctx", None), ast.Load):
            parts = _dotted(node)
            if not parts or parts[0] not in names:
                if isinstance(node, ast.Name) and node.id in BANNED_BUILTINS:
                    found.add(f"line {node.lineno}: {node.id}")
                continue
            full = ".".join([names[parts[0]], *parts[1:]])
            if _banned(full):
                found.add(f"line {node.lineno}: {full}")
    return sorted(found)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_modules_make_no_nondeterministic_calls(path: Path):
    assert violations(path.read_text()) == []


BAD = {
    "datetime.datetime.now()": "import datetime\ndatetime.datetime.now()\n",
    "from datetime import datetime": "from datetime import datetime\ndatetime.now()\n",
    "aliased class": "from datetime import datetime as D\nD.utcnow()\n",
    "aliased module": "import datetime as dt\ndt.now()\n",
    "from time import sleep": "from time import sleep\nsleep(1)\n",
    "time.time_ns()": "import time\ntime.time_ns()\n",
    "aliased uuid": "import uuid as u\nu.uuid4()\n",
    "random": "import random as r\nr.random()\n",
    "os.environ": "import os\nos.environ['X']\n",
    "from os import getenv": "from os import getenv\ngetenv('X')\n",
    "pathlib": "from pathlib import Path\nPath('x').read_text()\n",
    "open()": "open('x')\n",
    "print()": "print('x')\n",
    "__import__": "__import__('time').time()\n",
    "date.today()": "from datetime import date\ndate.today()\n",
    "submodule alias": "import os.path as p\np.exists('x')\n",
    "a clock read through an instance": "def f(started):\n    return started.now()\n",
    "the workflow clock's result read again": "from temporalio import workflow\n"
                                              "workflow.now().now()\n",
}
GOOD = {
    "workflow clock": "from temporalio import workflow\nworkflow.now()\nworkflow.uuid4()\n",
    "timedelta": "from datetime import timedelta\ntimedelta(seconds=1)\n",
    "asyncio timer": "import asyncio\nasyncio.sleep(1)\n",
    "a local name like a module": "def f(time):\n    return time.value\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_scan_catches_each_form_a_person_would_write(name):
    assert violations(BAD[name]), name


@pytest.mark.parametrize("name", sorted(GOOD))
def test_the_scan_leaves_deterministic_code_alone(name):
    assert violations(GOOD[name]) == [], name
