"""The determinism guard's runner: the SDK's sandbox with only what must be passed through
passed through, so that our own code on a workflow's path is policed at run time.

The workflows import our modules inside `workflow.unsafe.imports_passed_through()`; passed
through, a module keeps its own `time`, `random`, `os` and `open`, and the sandbox sees none
of its calls. `own_modules_in_sandbox()` makes that block a plain import for the test's
duration, so each run re-imports findings, models, stages, contract, safeio, taskdir and
workflows inside its sandbox, where those names are the sandbox's restricted proxies.
`planted()` appends a wrapper to a helper's source as the sandbox imports it (the host's copy
is untouched), for tests that prove the guard fails.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import (
    SandboxedWorkflowRunner,
    SandboxMatcher,
    SandboxRestrictions,
)

from connection.converter import DATA_CONVERTER
from worker import WORKFLOWS

# The SDK passes the standard library, temporalio and pydantic through. Of ours, only config:
# it resolves paths at import and is read once at the worker's start, never in a workflow.
PASSED_THROUGH = {"config"}
# The SDK's defaults plus environment reads, which its defaults leave alone, and any use of
# our configuration once a run is going (passed through, it is not re-imported to police).
MEMBERS = SandboxRestrictions.invalid_module_members_default | SandboxMatcher(children={
    "os": SandboxMatcher(access={"environ", "environb", "getenv", "getenvb"},
                         only_runtime=True),
    "config": SandboxMatcher.all_uses_runtime})


def strict_runner() -> SandboxedWorkflowRunner:
    """The SDK's sandbox with its own pass-throughs and PASSED_THROUGH, nothing else."""
    default = SandboxRestrictions.default
    restrictions = SandboxRestrictions(
        passthrough_modules=default.passthrough_modules | PASSED_THROUGH,
        invalid_modules=default.invalid_modules,
        invalid_module_members=MEMBERS)
    return SandboxedWorkflowRunner(restrictions=restrictions)


@contextlib.contextmanager
def own_modules_in_sandbox() -> Iterator[None]:
    """The workflows' `imports_passed_through()` blocks as plain imports while this lasts."""
    original = workflow.unsafe.imports_passed_through
    workflow.unsafe.imports_passed_through = contextlib.nullcontext  # type: ignore[assignment]
    try:
        yield
    finally:
        workflow.unsafe.imports_passed_through = original  # type: ignore[assignment]


class _Planted(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds MODULE as usual, then runs its source with EXTRA appended."""

    def __init__(self, module: str, extra: str) -> None:
        self.module, self.extra = module, extra

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        """Only MODULE, found by the path finder, loaded by us."""
        if fullname != self.module:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=self,
            submodule_search_locations=spec.submodule_search_locations)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        """The default module object."""
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        """The module's own source, then the plant."""
        assert module.__file__
        with open(module.__file__, encoding="utf-8") as source:
            text = source.read() + "\n" + self.extra
        exec(compile(text, module.__file__, "exec"), module.__dict__)


def plant(target: str, probe: str) -> str:
    """Source that wraps TARGET (a function, or `Class.method`) so that each call first runs
    PROBE (one statement)."""
    return (f"_planted_original = {target}\n"
            "def _planted(*args, **kwargs):\n"
            f"    {probe}\n"
            "    return _planted_original(*args, **kwargs)\n"
            f"{target} = _planted\n")


@contextlib.contextmanager
def planted(module: str, target: str, probe: str) -> Iterator[None]:
    """MODULE's TARGET runs PROBE first, in every copy imported while this lasts."""
    finder = _Planted(module, plant(target, probe))
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


async def replay_in_sandbox(path: Path, raise_on_failure: bool = True) -> Exception | None:
    """Replay PATH's recorded history under the strict sandbox; its failure, if any."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    with own_modules_in_sandbox():
        replayer = Replayer(workflows=WORKFLOWS, data_converter=DATA_CONVERTER,
                            workflow_runner=strict_runner())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=raise_on_failure)
    return result.replay_failure
