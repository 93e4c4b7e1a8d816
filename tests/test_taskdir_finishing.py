"""The agents' CLI finishing its own task file without PyYAML (#39): the file it writes loads
to exactly what the worker's own `TaskDirectory.finish` writes, 0600, under the tooling's
lock; what it is unsure of is left untouched for the full path."""

from __future__ import annotations

import fcntl
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from agent_cli import task_files
from stages import STAGES
from taskdir import TaskDirectory, TaskSpec, TaskStyle, moves
from taskdir.finishing import finish
from taskdir.locks import TaskLocked
from tests.task_queue_tool import TaskQueueTool
from tests.test_block_dump import typed

HOSTILE = ["it's \"done\": yes", "a\nb\n\n  c ", "- x", "* y", "& z", "! w", "# no", "null",
           "yes", "1e3", "é 😀 \u2028", "key: value # c", "'", " lead", "trail "]
CLOCK = datetime(2026, 12, 6, 23, 0, 1, 123456, tzinfo=UTC)


def dispatched(root: Path, kind: str, vocabulary: str, text: str) -> Path:
    spec = TaskSpec(f"0be01c4e-1e12-5897-b086-{abs(hash((kind, text))) % 10**12:012d}",
                    text, kind, f"{kind}: {text}", {"build_name": "b", "note": text,
                                                    "flags": [text, {"title": text}]},
                    originating_task_id="12345678-1234-1234-1234-123456789012")
    return TaskDirectory(root, TaskStyle(vocabulary=vocabulary)).dispatch(spec, "CiQw+/==")


def finished_both_ways(tmp_path: Path, path: Path, status: str, output: str) -> bool:
    """PATH finished by the CLI, and a copy of it by the worker's full path: the two load
    alike, both 0600. Whether the CLI's lean path was sure (else the file was untouched and the
    CLI's full path wrote it)."""
    full_root = tmp_path / "full"
    full_root.mkdir(mode=0o700)
    copy = full_root / path.name
    shutil.copy2(path, copy)
    note = f"stage {status} with complete_activity.py"
    before = path.read_bytes()
    sure = finish(path, status, note, output, task_files.finisher)
    if not sure:
        assert path.read_bytes() == before
        task_files.settle_own_file(path, "success" if status == "completed" else
                                          "failed", output, lean=False)
    document = yaml.safe_load(copy.read_text())
    TaskDirectory(full_root).finish(str(document["id"]), status, note, output=output,
                                    by=task_files.finisher(document), path=copy)
    assert typed(yaml.safe_load(path.read_bytes())) == typed(yaml.safe_load(copy.read_bytes()))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 == stat.S_IMODE(copy.stat().st_mode)
    return sure


@pytest.mark.parametrize("vocabulary", ["upstream", "task-queue"])
@pytest.mark.parametrize("stage", [stage.upstream for stage in STAGES])
def test_the_lean_finish_writes_what_the_worker_would(tmp_path, monkeypatch, stage, vocabulary):
    monkeypatch.setattr(moves, "utc_now", lambda: CLOCK)
    unsure = []
    every = (stage, vocabulary) == ("security_fix", "task-queue")  # the rest: a few (fsyncs)
    texts = HOSTILE if every else HOSTILE[:3]
    for n, text in enumerate(texts):
        root = tmp_path / str(n)
        path = dispatched(root, stage, vocabulary, text)
        if not finished_both_ways(root, path, "completed" if n % 2 else "failed", text):
            unsure.append(text)
        task_id = yaml.safe_load(path.read_bytes())["id"]
        assert TaskQueueTool(root).read(task_id)["result"]["output"] == text
        before = path.read_bytes()
        assert finish(path, "completed", "again", "x", task_files.finisher) \
            or text in unsure
        assert path.read_bytes() == before  # final already: never moved again
    assert unsure == (["1e3"] if every else [])  # number-like words: the full loader


def test_a_file_the_tooling_rewrote_is_finished_alike(tmp_path, monkeypatch):
    """After the tooling's own moves (its dumper, its extra keys) the lean path still agrees."""
    monkeypatch.setattr(moves, "utc_now", lambda: CLOCK)
    path = dispatched(tmp_path, "build_plan", "task-queue", "x")
    task_id = yaml.safe_load(path.read_text())["id"]
    tool = TaskQueueTool(tmp_path)
    tool.dispatcher_tick()
    tool.claim(task_id, "x")
    assert finished_both_ways(tmp_path, path, "completed", "done")
    assert [task["status"] for task in tool.tasks()] == ["completed"]


def test_the_lean_finish_takes_the_tooling_lock(tmp_path):
    path = dispatched(tmp_path, "build_plan", "upstream", "x")
    task_id = yaml.safe_load(path.read_text())["id"]
    before = path.read_bytes()
    with open(tmp_path / ".locks" / f"{task_id}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(TaskLocked):
            finish(path, "completed", "done", "out", task_files.finisher)
    assert path.read_bytes() == before
    assert finish(path, "completed", "done", "out", task_files.finisher)
    assert yaml.safe_load(path.read_text())["status"] == "completed"


@pytest.mark.parametrize("odd", ["# a comment\n", "deep: " + "{a: " * 40 + "1" + "}" * 40 + "\n",
                                 "n:\n" + "".join("  " * i + "k:\n" for i in range(1, 40))
                                 + "  " * 40 + "v: 1\n"])
def test_what_the_lean_path_is_unsure_of_goes_to_the_full_path(tmp_path, odd):
    path = dispatched(tmp_path, "build_plan", "upstream", "x")
    path.write_bytes(path.read_bytes() + odd.encode())
    before = path.read_bytes()
    assert not finish(path, "completed", "done", "out", task_files.finisher)
    assert path.read_bytes() == before
    task_files.settle_own_file(path, "success", "out")
    document = yaml.safe_load(path.read_text())
    assert (document["status"], document["result"]["output"]) == ("completed", "out")


@pytest.mark.parametrize("lean", [True, False])
def test_a_relative_task_file_path_is_marked_too(tmp_path, monkeypatch, lean):
    """`--task-file task.yml` from the task directory: the file is finished (it once left a
    note instead: the relative path was not below the directory's resolved root)."""
    path = dispatched(tmp_path, "build_plan", "upstream", "x")
    monkeypatch.chdir(tmp_path)
    task_files.settle_own_file(Path(path.name), "success", "out", lean=lean)
    assert yaml.safe_load(path.read_text())["status"] == "completed"
