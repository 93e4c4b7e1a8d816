"""The quick check (`-m unit`) holds only tests that need no server, and every test is sorted."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.markers import KINDS, PURE_FIXTURES, SERVER_FIXTURES

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def defined_fixtures() -> set[str]:
    """Names of the fixtures defined anywhere under tests/ (read from the source)."""
    names: set[str] = set()
    for path in TESTS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                    "fixture" in ast.unparse(deco) for deco in node.decorator_list):
                names.add(node.name)
    return names


def test_every_fixture_is_sorted_as_server_or_pure():
    """A new fixture (a trace backend, say) must be sorted before a unit test can use it."""
    unsorted = defined_fixtures() - SERVER_FIXTURES - PURE_FIXTURES
    assert not unsorted, f"sort these fixtures in tests/markers.py: {sorted(unsorted)}"
    assert not SERVER_FIXTURES & PURE_FIXTURES


def test_every_test_has_one_kind_and_no_unit_test_uses_a_server(request: pytest.FixtureRequest):
    """Over this run's tests: one kind each, and a unit test reaches no server fixture."""
    items = request.session.items
    assert items
    for item in items:
        kinds = [kind for kind in KINDS if item.get_closest_marker(kind)]
        assert len(kinds) == 1, f"{item.nodeid}: {kinds}"
        if kinds == ["unit"]:
            assert not SERVER_FIXTURES & set(item.fixturenames), item.nodeid
    assert request.node.get_closest_marker("unit")


def quick_check(tmp_path: Path, test_file: str) -> subprocess.CompletedProcess[str]:
    """`pytest -m unit` on one planted test file with this suite's conftest (no server may
    start: the CLI and the Java test server are not there to find)."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    (tmp_path / "test_planted.py").write_text(textwrap.dedent(test_file))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TEMPORAL_CLI": str(tmp_path / "no-cli"),
           "TEMPORAL_TEST_SERVER": str(tmp_path / "no-test-server")}
    return subprocess.run([sys.executable, "-m", "pytest", "-m", "unit", "-p", "no:cacheprovider",
                           "-q", "-W", "ignore::pytest.PytestUnknownMarkWarning"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_the_quick_check_leaves_out_the_server_tests(tmp_path: Path):
    """A test's own mark and its fixtures decide; `-m unit` runs only the pure one."""
    ran = quick_check(tmp_path, """
        import pytest

        def test_pure(dirs):
            assert dirs

        def test_needs_server(server):
            raise AssertionError("a server test ran in the quick check")

        @pytest.mark.slow
        def test_waits():
            raise AssertionError("a slow test ran in the quick check")
    """)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed, 2 deselected" in ran.stdout


@pytest.mark.slow
def test_a_unit_mark_on_a_server_test_is_refused(tmp_path: Path):
    """An explicit `unit` mark cannot pull a server test into the quick check."""
    ran = quick_check(tmp_path, """
        import pytest

        @pytest.mark.unit
        def test_claims_unit(client):
            pass
    """)
    assert ran.returncode == pytest.ExitCode.USAGE_ERROR, ran.stdout + ran.stderr
    assert "test_claims_unit: marked unit but uses a server fixture" in ran.stderr
