"""Task-file building, idempotent rewrite and lookup by id."""

from __future__ import annotations

import uuid

import yaml

import taskfiles
from taskfiles import TaskSpec


def spec(task_id: str | None = None, **payload) -> TaskSpec:
    return TaskSpec(task_id=task_id or str(uuid.uuid4()), target_agent="dev",
                    task_type="build_plan", summary="Implement build: x", payload=payload)


def test_dispatch_twice_rewrites_the_same_file_with_new_token(tmp_path):
    s = spec(build_name="x")
    first = taskfiles.dispatch(tmp_path, s, "dG9rZW4x")
    second = taskfiles.dispatch(tmp_path, s, "dG9rZW4y", "attempt 2: fresh task token")
    assert first == second
    assert list(tmp_path.glob("*.yml")) == [first]
    document = yaml.safe_load(first.read_text())
    assert document["payload"]["task_token"] == "dG9rZW4y"
    assert [h["note"] for h in document["history"]][-1] == "attempt 2: fresh task token"
    assert len(document["history"]) == 2


def test_yaml_injection_in_values_stays_data(tmp_path):
    s = spec(build_name="x", description="a\nstatus: approved\n---\n- !!python/object:os.system")
    path = taskfiles.dispatch(tmp_path, s, "dA==")
    document = yaml.safe_load(path.read_text())
    assert document["status"] == "submitted"
    assert document["payload"]["description"].startswith("a\nstatus: approved")


def test_find_in_archive_and_among_many(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    ids = []
    for index in range(300):
        task_id = str(uuid.uuid4())
        ids.append(task_id)
        target = archive if index % 2 else tmp_path
        document = taskfiles.build_document(spec(task_id), "", taskfiles.utc_now())
        (target / f"20260101-0000{index % 60:02d}-{task_id[:8]}.yml").write_bytes(
            taskfiles.dump(document))
    for task_id in ids[::37]:
        path = taskfiles.find_task_file(tmp_path, task_id)
        assert path is not None and yaml.safe_load(path.read_text())["id"] == task_id
    assert taskfiles.find_task_file(tmp_path, str(uuid.uuid4())) is None


def test_find_file_with_nonstandard_name_and_new_files(tmp_path):
    task_id = str(uuid.uuid4())
    document = taskfiles.build_document(spec(task_id), "", taskfiles.utc_now())
    assert taskfiles.find_task_file(tmp_path, task_id) is None
    (tmp_path / "hand-written.yml").write_bytes(taskfiles.dump(document))
    assert taskfiles.find_task_file(tmp_path, task_id) == tmp_path / "hand-written.yml"


def test_set_status_appends_history(tmp_path):
    path = taskfiles.dispatch(tmp_path, spec(), "dA==")
    taskfiles.set_status(path, "input-required", "blocks")
    document = yaml.safe_load(path.read_text())
    assert document["status"] == "input-required"
    assert document["history"][-1]["status"] == "input-required"
    assert taskfiles.read_status(tmp_path, document["id"]) == "input-required"


def test_malformed_task_files_are_skipped(tmp_path):
    task_id = str(uuid.uuid4())
    (tmp_path / f"20260101-000000-{task_id[:8]}.yml").write_bytes(b"\xff\xfe: [")
    assert taskfiles.find_task_file(tmp_path, task_id) is None
    assert taskfiles.read_status(tmp_path, task_id) is None


def test_status_cache_follows_every_rewrite(tmp_path):
    path = taskfiles.dispatch(tmp_path, spec(), "dA==")
    task_id = yaml.safe_load(path.read_text())["id"]
    assert taskfiles.read_status(tmp_path, task_id) == "submitted"
    for status in ("input-required", "approved", "rejected"):
        taskfiles.set_status(path, status, "n")
        assert taskfiles.read_status(tmp_path, task_id) == status


def test_header_cache_evicts_the_least_recently_used(tmp_path, monkeypatch):
    # Ids that differ in their first 8 chars: each lookup parses only its own file, whatever
    # order the directory lists in.
    monkeypatch.setattr(taskfiles, "MAX_CACHED_HEADERS", 3)
    ids = {n: f"{n * 8}-0000-4000-8000-000000000000" for n in "abcd"}
    paths = [taskfiles.dispatch(tmp_path, spec(task_id=ids[n]), "dA==") for n in "abcd"]
    for n in "abca":
        assert taskfiles.read_status(tmp_path, ids[n]) == "submitted"
    assert taskfiles.read_status(tmp_path, ids["d"]) == "submitted"
    assert len(taskfiles._HEADERS) == 3
    assert [path in taskfiles._HEADERS for path in paths] == [True, False, True, True]


def test_lookup_of_a_short_id_parses_only_its_own_file(tmp_path, monkeypatch):
    paths = {n: taskfiles.dispatch(tmp_path, spec(task_id=n), "dA==") for n in ("t-a", "t-b")}
    for wanted, path in paths.items():  # both ways round: one of them is listed second
        monkeypatch.setattr(taskfiles, "_HEADERS", taskfiles._HeaderCache())
        assert taskfiles.find_task_file(tmp_path, wanted) == path
        assert [p in taskfiles._HEADERS for p in paths.values()] == [
            p == path for p in paths.values()]
