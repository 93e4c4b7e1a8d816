"""The agents' CLI's PyYAML-free emitter (#39): what it writes loads, with PyYAML's safe
loader, to exactly the document it was given; whatever it is unsure of is None (the caller
then uses PyYAML's dumper)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import yaml

from safeio import block_dump
from taskdir.moves import move
from tests.test_block_yaml import NASTY, worker_file


def typed(value: object) -> object:
    """VALUE with every leaf's type (and a timestamp's offset) beside it: `1 == True` and
    two clocks at one instant are not the same document."""
    if isinstance(value, dict):
        return [(key, typed(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, datetime):
        return (value, value.utcoffset())
    return (type(value).__name__, value)


def round_trip(document: dict) -> dict:
    data = block_dump.dump(document)
    assert data is not None, document
    loaded = yaml.safe_load(data)
    assert typed(loaded) == typed(document), data
    return loaded


@pytest.mark.parametrize("text", NASTY)
@pytest.mark.parametrize("vocabulary", ["upstream", "task-queue"])
def test_worker_files_with_any_text_finished_load_back_exactly(text, vocabulary):
    document = yaml.safe_load(worker_file(text, {"note": text, "m": {"k": text}, "e": []},
                                          vocabulary))
    assert move(document, "completed", f"done: {text}", output=text, by=text or "x",
                unless_terminal=True)
    round_trip(document)


def test_random_texts_and_scalars_load_back_exactly():
    pieces = [*NASTY, "a", " ", "'", '"', "\\", "é", "\u2029", "\x1f", "\U0001f600", "#"]
    scalars = [None, True, False, 0, 7, 10**30, "", datetime(2026, 1, 2, 3, 4, 5),
               datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5))),
               datetime(2026, 1, 2, tzinfo=UTC), [], {}]
    rng = random.Random(3939)
    for _ in range(1500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 5)))
        round_trip({"k": text, "s": [text, {"a": text, "b": rng.choice(scalars)}],
                    "v": rng.choice(scalars), "m": {"p": {"q": [rng.choice(scalars)]}}})


def test_plain_where_it_reads_back_quoted_where_it_would_not():
    data = block_dump.dump({"a": "completed", "b": "yes", "c": "1e3", "d": "- x", "e": "a\nb",
                            "f": "null", "g": 12})
    assert data == (b'a: completed\nb: "yes"\nc: "1e3"\nd: "- x"\ne: "a\\nb"\nf: "null"\n'
                    b"g: 12\n")


@pytest.mark.parametrize("document", [
    {}, {"a": [[1]]}, {"a": -7}, {1: "x"}, {"yes": 1}, {"y": 1}, {"a b": 1}, {"a": 1.5},
    {"a": b"x"}, {"a": date(2026, 1, 2)}, {"a": "\ud800"}, {"a": (1,)}, {"a": {"b": {1, 2}}},
    {"a": datetime(2026, 1, 2, tzinfo=timezone(timedelta(seconds=30)))},
])
def test_what_it_is_unsure_of_is_none(document):
    assert block_dump.dump(document) is None
