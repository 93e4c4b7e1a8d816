"""The one YAML reader for what we did not write (#36.5, #36.6): a key written twice and an
alias inside the collection it names are refused before anything recursive sees them, in
task files as in triage files; node counts are bounded with aliases expanded."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract import TriageFormatError
from findings import parse_triage
from safeio import untrusted_yaml
from safeio.untrusted_yaml import InputRefused, TooManyNodes
from taskdir import UNREADABLE, TaskDirectory, load
from testbed.helpers import make_origin


@pytest.mark.parametrize("text,key", [
    ("blocks: [root password]\nflags: []\ninfo: []\nblocks: []\n", "'blocks'"),
    ("a: 1\nb: {c: 1, c: 2}\n", "'c'"),
    ("history:\n  - status: approved\n    actor: mallory\n    actor: alice\n", "'actor'"),
    ("true: 1\nTrue: 2\n", "True"),  # one key once YAML has resolved it
])
def test_a_key_written_twice_is_refused_naming_it(text, key):
    with pytest.raises(InputRefused, match=f"writes the key {key} twice"):
        untrusted_yaml.parse(text.encode(), "t.yml")


def test_merged_keys_and_lookalike_keys_are_not_duplicates():
    assert untrusted_yaml.parse(b"base: &b {a: 1}\nx:\n  <<: *b\n  a: 2\n", "t") == {
        "base": {"a": 1}, "x": {"a": 2}}
    assert untrusted_yaml.parse(b'1: int\n"1": str\n', "t") == {1: "int", "1": "str"}


@pytest.mark.parametrize("text", [
    "blocks: &a [*a]\nflags: []\ninfo: []\n",
    "notes: &a [*a]\n",
    "a: &a {b: [1, {c: *a}]}\n",
    "- &a [x, &b [*a]]\n",
])
def test_an_alias_inside_its_own_collection_is_refused(text):
    with pytest.raises(InputRefused, match="recursive YAML alias"):
        untrusted_yaml.parse(text.encode(), "t.yml")


def test_aliases_to_finished_collections_still_load():
    assert untrusted_yaml.parse(b"a: &a [1, 2]\nb: [*a, *a]\n", "t") == {
        "a": [1, 2], "b": [[1, 2], [1, 2]]}


def test_nodes_are_counted_with_aliases_expanded():
    raw = b"a: &a [" + b", ".join([b"x"] * 1000) + b"]\nb: [" + b", ".join([b"*a"] * 200) + b"]\n"
    assert len(raw) < 10_000
    with pytest.raises(TooManyNodes, match="more than 100000 nodes"):
        untrusted_yaml.parse(raw, "t")
    assert untrusted_yaml.check_shape(b"a: [x, y]\n", "t") == 5  # mapping, key, list, 2 items


@pytest.mark.parametrize("raw,message", [
    (b"blocks: [root password]\nflags: []\ninfo: []\nblocks: []\n", "key 'blocks' twice"),
    (b"blocks: &a [*a]\nflags: []\ninfo: []\n", "recursive YAML alias"),
])
def test_triage_refusals_are_triage_format_errors(raw, message):
    """A second `blocks:` used to win (0 blocks: a clean build); `&a [*a]` raised
    RecursionError, was retried and failed the build instead of parking it."""
    with pytest.raises(TriageFormatError, match=message):
        parse_triage(raw)


def test_a_task_file_with_a_recursive_alias_is_unreadable_not_a_crash(tmp_path: Path):
    """`notes: &a [*a]` in an originating task used to load, then recurse when written."""
    origin = make_origin(tmp_path)
    tasks = TaskDirectory(tmp_path)
    path = tasks.find(origin)
    path.write_bytes(path.read_bytes() + b"notes: &a [*a]\n")
    with pytest.raises(UNREADABLE):
        load(path)
    assert TaskDirectory(tmp_path).find(origin) is None  # not a task we can read
    with pytest.raises(UNREADABLE):
        tasks.set_status(origin, "input-required", "blocks", path=path)
