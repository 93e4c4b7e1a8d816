"""The agents' CLI's PyYAML-free reader (#39): on every file it returns a document for, that
document is the safe full loader's; anything else it leaves to that loader (None). And the
CLI's `--task-file ... success` over HTTP loads neither PyYAML nor the directory's index."""

from __future__ import annotations

import base64
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from safeio import block_yaml, untrusted_yaml
from taskdir.documents import TaskSpec, dump
from taskdir.vocabulary import TaskStyle
from testbed.agents import COMPLETE

NASTY = ["", " ", "'", "''", '"', "\\", ":", ": ", " #", "#", "-", "- ", "?", "|", ">", "&a",
         "*a", "!!str", "%", "@", "`", "[", "]", "{", "}", ",", "\n", "\n\n", "\t", "\r",
         "\x85", "\u2028", "\ufeff", "\x00", "\x7f", "é", "😀", "0", "00", "0x1F", "0b10",
         "0o7", "1_000", "1:20", "1.5", "1e3", "1.0e+3", ".5", ".inf", "-.inf", ".NaN", "+1",
         "-1", "~", "null", "Null", "yes", "No", "on", "OFF", "y", "n", "true", "<<", "=",
         "2026-12-06", "2026-12-06 22:40:17.224713+00:00", "2026-1-6 1:02:03", "2026-12-06T1:2:3Z",
         "127.0.0.1:7233", "0be01c4e-1e12", "12345678-1234", "a b", "a  b ", "x" * 300, "---",
         "...", "key: value"]


def same_as_full(raw: bytes) -> object:
    """The lean reader's answer, checked against the full loader's when it gives one."""
    lean = block_yaml.parse(raw)
    if lean is not None:
        full = untrusted_yaml.parse(raw, "t.yml")
        assert lean == full, raw
        assert [type(v) for v in _leaves(lean)] == [type(v) for v in _leaves(full)], raw
    return lean


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in (key, *_leaves(item))]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def worker_file(text: str, extra: dict | None = None, vocabulary: str = "upstream") -> bytes:
    """A task file as the worker dumps it, TEXT in its free-text fields."""
    spec = TaskSpec("0be01c4e-1e12-5897-b086-2237bb693348", "dev", "security_fix", text,
                    {"build_name": "b", "flags": [text, {"title": text, "line": 3}],
                     "instruction": f"Fix it.\n\n{text}\nthen run it", "temporal": {
                         "address": "127.0.0.1:7233", "namespace": "default", "tls": False},
                     **(extra or {})}, originating_task_id="12345678-1234-1234-1234-123456789012",
                    context_refs=("/plans/b.md",))
    created = datetime(2026, 12, 6, 22, 40, 17, 224713, tzinfo=UTC)
    style = TaskStyle(vocabulary=vocabulary)  # type: ignore[arg-type]
    return dump(style.document(spec, "CiQwMWEy+/==", created))


def test_the_files_the_worker_writes_are_read_without_pyyaml():
    for vocabulary in ("upstream", "task-queue"):
        raw = worker_file("Implement build 'b': it's \"fine\"", vocabulary=vocabulary)
        document = same_as_full(raw)
        assert document is not None, raw
        assert document["created"] == datetime(2026, 12, 6, 22, 40, 17, 224713, tzinfo=UTC)
        assert document["payload"]["task_token"] == "CiQwMWEy+/=="


@pytest.mark.parametrize("text", NASTY)
def test_any_text_the_worker_writes_reads_as_the_full_loader_reads_it(text):
    same_as_full(worker_file(text))
    same_as_full(worker_file("x", {"note": text, "n": [text, [text], {}], "m": {"k": text}}))


def test_random_texts_and_scalars_agree_with_the_full_loader():
    pieces = [*NASTY, "a", "b", "1", "2", ".", "-", "_", " ", "  ", "e", "E", "T", "Z", "+"]
    rng = random.Random(39)
    for _ in range(1500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 4)))
        same_as_full(worker_file(text))
        line = text.replace("\n", " ")
        for raw in (f"k: {line}\n", f"k:\n- {line}\n", f"k:\n  j: {line}\n", f"{line}: 1\n"):
            try:
                same_as_full(raw.encode())
            except (ValueError, untrusted_yaml.yaml.YAMLError):
                assert block_yaml.parse(raw.encode()) is None, raw


@pytest.mark.parametrize("raw", [
    b"a: 1\na: 2\n", b"a: &x [1]\nb: *x\n", b"a: !!str 1\n", b"a: 1 # note\n", b"a: |\n  x\n",
    b"a: [1, 2]\n", b"a:\n\tb: 1\n", b"a: 1\r\n", b"- 1\n- - 2\n", b"a: 1", b"\xff: 1\n",
    b"a: 'open\n", b"a: \"x\\\n  y\"\n", b"a: 0x1F\n", b"a: 1.5\n", b"a: 2026-12-06\n",
    b"".join(b"  " * i + b"k:\n" for i in range(70)) + b"  " * 70 + b"v: 1\n",
    b"---\na: 1\n", b"a: x\n  y\n", b"yes: 1\n",
    b"a: -x\n", b"a: 'x\n  '\n",
])
def test_what_it_does_not_fully_understand_goes_to_the_full_loader(raw):
    assert block_yaml.parse(raw) is None


# A hostile agent's texts (the review of 2026-12-06): each read differently than PyYAML reads
# it, refused by PyYAML but read, or beyond the full loader's limits; each is the full loader's.
HOSTILE = {
    "a sequence nested under keys at their own column, 70 deep":
        b"z:\n" + b"".join(b"  " * i + b"- a:\n" for i in range(70)) + b"  " * 70 + b"- 1\n",
    "no-break space after a key": "key: \xa0\n  - a\n".encode(),
    "wide space after a closing quote": "key: 'a'\u3000\n".encode(),
    "no-break space after a double quote": 'key: "a"\xa0\n'.encode(),
    "a spaced-out temporal mapping":
        "payload:\n  task_token: T\n  temporal: \xa0\n    address: 127.0.0.1:3\n".encode(),
    "a line with no colon read as a key": b"payload\n  task_token: T\n",
    "a bare word over a sequence": b"x\n  - a\n",
    "a key of 1,025 characters": b"k" * 1025 + b": 1\n",
    "65 nested mappings": b"".join(b"  " * i + b"k:\n" for i in range(65)) + b"  " * 65 + b"v: 1\n",
    "60,000 keys": b"".join(b"k%d: 1\n" % i for i in range(60_000)),
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_agents_texts_go_to_the_full_loader(raw):
    """Never a traceback, never a reading of its own: the full loader refuses or reads it."""
    assert block_yaml.parse(raw) is None


# What YAML lets a stream hold, less what the lean reader leaves to the full loader anyway
# (tab, carriage return, NEL, LS and PS; the byte-order mark is refused apart).
YAML_PRINTABLE = [(0x0A, 0x0A), (0x20, 0x7E), (0xA0, 0x2027), (0x202A, 0xD7FF),
                  (0xE000, 0xFFFD), (0x10000, 0x10FFFF)]


def test_every_code_point_outside_the_printable_ranges_goes_to_the_full_loader():
    """The refused set is spelled as its few members: checked against the ranges it stands
    for over every code point, and through the reader with a sample of both sides."""
    allowed = set().union(*(range(low, high + 1) for low, high in YAML_PRINTABLE))
    everything = "".join(map(chr, range(0x110000)))
    refused = {ord(char) for char in block_yaml._UNPRINTABLE.findall(everything)}
    assert refused == set(range(0x110000)) - allowed
    for char in "\x00\x09\x1f\x7f\x9f\u2028\u2029\ufffe\uffff":
        assert block_yaml.parse(f"a: x{char}y\n".encode()) is None, hex(ord(char))
    for char in "~\xa1\u2027\u202a\ud7ff\ue000\ufffd\U00010000\U0010ffff":
        assert block_yaml.parse(f"a: x{char}y\n".encode()) == {"a": f"x{char}y"}, hex(ord(char))


def test_nesting_that_would_exhaust_the_stack_is_refused_not_a_crash(tmp_path):
    """700 levels through the keys-over-a-sequence path: the lean reader defers, and the full
    loader refuses it in one line (a planted copy cannot crash another agent's CLI)."""
    from taskdir.reading import load

    path = tmp_path / "20991231-235959-deadbeef.yml"
    path.write_bytes(b"z:\n" + b"".join(b"  " * i + b"- a:\n" for i in range(700)) +
                     b"  " * 700 + b"- 1\n")
    path.chmod(0o600)
    assert block_yaml.parse(path.read_bytes()) is None
    with pytest.raises(untrusted_yaml.InputRefused):
        load(path, lean=True)


def test_more_nodes_than_the_limit_go_to_the_full_loader():
    raw = b"a:\n" + b"- 1\n" * (untrusted_yaml.MAX_NODES + 1)
    assert block_yaml.parse(raw) is None
    with pytest.raises(untrusted_yaml.TooManyNodes):
        untrusted_yaml.parse(raw, "t.yml")


@pytest.mark.parametrize("tls", [False, True])
def test_the_cli_reads_its_task_file_over_http_without_pyyaml_or_the_index(tmp_path, tls):
    """What `--task-file ... success` over HTTP imports up to the call (nothing answers here):
    no PyYAML, no directory index, no logging, no pydantic, no dataclasses, and no temporalio
    (with the file's `tls: true` too)."""
    path = tmp_path / "20261206-224017-0be01c4e.yml"
    path.write_bytes(worker_file("x", {"temporal": {"address": "127.0.0.1:1",
                                                    "namespace": "default", "tls": tls}}))
    path.chmod(0o600)
    env = {"AGENT_TRANSPORT": "http", "TASK_QUEUE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ran = subprocess.run([sys.executable, "-X", "importtime", COMPLETE, "--task-file",
                          str(path), "success", "done"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 5, ran.stderr[-500:]
    assert ran.stderr.splitlines()[-1].startswith("complete_activity: nothing answers HTTP")
    imported = {line.split("|")[-1].strip() for line in ran.stderr.splitlines()
                if line.startswith("import time:")}
    heavy = {"yaml", "taskdir.index", "taskdir.documents", "pydantic", "temporalio", "uuid",
             "logging", "dataclasses", "inspect"}
    assert "taskdir.reading" in imported and not heavy & imported, heavy & imported


def test_the_token_form_finds_its_file_without_pyyaml_or_the_index(tmp_path):
    """The upstream form (`complete_activity.py TOKEN success`) finds the file holding its
    token by the files' names and the lean reader: no PyYAML, no index, no pydantic."""
    token = base64.b64encode(b"\x12\x07build-1\x1a\x0crun-0b6c3a1e").decode()
    path = tmp_path / "20261206-224017-0be01c4e.yml"
    path.write_bytes(worker_file("x", {"temporal": {"address": "127.0.0.1:1",
                                                    "namespace": "default", "tls": False}})
                     .replace(b"CiQwMWEy+/==", token.encode()))
    path.chmod(0o600)
    env = {"AGENT_TRANSPORT": "http", "TASK_QUEUE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ran = subprocess.run([sys.executable, "-X", "importtime", COMPLETE, token, "success",
                          "done"], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 5, ran.stderr[-500:]
    assert "127.0.0.1:1" in ran.stderr.splitlines()[-1]  # the address its file gave
    imported = {line.split("|")[-1].strip() for line in ran.stderr.splitlines()
                if line.startswith("import time:")}
    heavy = {"yaml", "taskdir.index", "taskdir.documents", "pydantic", "temporalio", "logging"}
    assert "taskdir.reading" in imported and not heavy & imported, heavy & imported


def test_the_cli_finishes_its_task_file_without_pyyaml_or_the_index(tmp_path):
    """Marking the file completed after the call (`settle_own_file`) loads no PyYAML, no
    directory index, no logging, no dataclasses, and the file is completed."""
    path = tmp_path / "20261206-224017-0be01c4e.yml"
    path.write_bytes(worker_file("it's: done"))
    path.chmod(0o600)
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]); "
            "from agent_cli.task_files import settle_own_file; "
            "settle_own_file(Path(sys.argv[1]), 'success', 'done')")
    ran = subprocess.run([sys.executable, "-X", "importtime", "-c", code, str(path),
                          str(Path(COMPLETE).parent)], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0 and "note" not in ran.stderr, ran.stderr[-500:]
    imported = {line.split("|")[-1].strip() for line in ran.stderr.splitlines()
                if line.startswith("import time:")}
    heavy = {"yaml", "taskdir.index", "taskdir.documents", "taskdir.directory", "logging",
             "dataclasses", "inspect", "uuid"}
    assert "taskdir.finishing" in imported and not heavy & imported, heavy & imported
    document = untrusted_yaml.parse(path.read_bytes(), path.name)
    assert (document["status"], document["result"]["output"]) == ("completed", "done")
