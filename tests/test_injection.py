"""Property tests: crafted inputs cannot break out of the YAML, the instruction or the wrapper."""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from activities import instructions
from findings import wrap_findings
from models import BuildPipelineInput
from stages import IMPLEMENT
from taskdir import TaskSpec, TaskStyle, dump, utc_now

EXAMPLES = settings(max_examples=300, derandomize=True, deadline=None)
ALPHABET = [*"ab:-\n\r\t'\"#&*!|>{}[]%@`\\/. <>", "\u2028", "\x00", "\x85", "é"]
nasty = st.text(alphabet=st.sampled_from(ALPHABET), max_size=40)


def mostly(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Nine in ten draws a value the validators accept (so the assertions are reached)."""
    return st.sampled_from([True] * 9 + [False]).flatmap(lambda ok: valid if ok else nasty)


builds = mostly(st.from_regex(r"[a-z0-9][a-z0-9-]{0,30}", fullmatch=True))
plans = mostly(st.from_regex(r"/[a-z0-9_./ -]{1,40}", fullmatch=True))
tasks = mostly(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{7,40}", fullmatch=True))
agents = mostly(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True))


@EXAMPLES
@given(summary=nasty, value=nasty, agent=nasty)
def test_task_file_round_trips_any_text(summary, value, agent):
    spec = TaskSpec(task_id="11111111-2222", target_agent=agent, task_type="build_plan",
                    summary=summary, payload={"description": value})
    document = TaskStyle().document(spec, "dG9rZW4=", utc_now())
    loaded = yaml.safe_load(dump(document))
    assert list(loaded) == list(document)
    assert loaded["status"] == "submitted" and loaded["payload"]["task_token"] == "dG9rZW4="
    assert loaded["summary"] == summary and loaded["payload"]["description"] == value


def test_a_lone_surrogate_is_refused_before_anything_is_written():
    spec = TaskSpec(task_id="11111111-2222", target_agent="dev", task_type="build_plan",
                    summary="x\ud800", payload={})
    with pytest.raises(UnicodeEncodeError):
        dump(TaskStyle().document(spec, "dG9rZW4=", utc_now()))


def test_accepted_inputs_are_single_safe_lines():
    seen = {"accepted": 0, "refused": 0}

    @EXAMPLES
    @given(build=builds, plan=plans, task=tasks, agent=agents)
    def check(build, plan, task, agent):
        try:
            params = BuildPipelineInput(build_name=build, plan_path=plan, task_id=task,
                                        target_agent=agent)
        except ValidationError:
            seen["refused"] += 1
            return
        seen["accepted"] += 1
        for value in (params.build_name, params.plan_path, params.task_id,
                      params.target_agent):
            assert not re.search(r"[\x00-\x1f\x7f\u2028\u2029\x85]", value)
        assert ".." not in params.plan_path.split("/")
        assert "/" not in params.target_agent and "/" not in params.task_id
        _, text = instructions.texts(IMPLEMENT, {"build_name": params.build_name,
                                                  "originating_task_id": params.task_id})
        assert text.splitlines()[-1].startswith(f"When done, run: {instructions.COMPLETE} ")
        assert len(text.splitlines()) == 2

    check()
    # Most generated inputs reach the assertions; the validators still refuse some.
    assert seen["accepted"] >= 120 and seen["refused"] >= 30, seen


@EXAMPLES
@given(st.lists(nasty, max_size=4))
def test_wrapper_survives_nasty_findings(findings):
    lines = wrap_findings(findings).split("\n")
    assert lines[0] == "<security-findings>" and lines[-1] == "</security-findings>"
    assert len(lines) == len(findings) + 2


FIELDS = ("title", "severity", "description", "location", "file", "line", "owner")
words = st.text(alphabet=st.sampled_from([*"ab :-#[]{}'\"é", "\t"]), max_size=12)
findings = st.lists(st.one_of(
    words, st.none(), st.dictionaries(st.sampled_from(FIELDS), st.one_of(words, st.none()),
                                      max_size=4)), min_size=1, max_size=5)


@EXAMPLES
@given(findings)
def test_property_no_finding_is_ever_dropped(items):
    """#35.1: every block is kept with each word it carries, or the file is refused as
    unreadable; never fewer blocks than items (a dropped block closed the build unseen)."""
    from contract import TriageFormatError
    from findings import parse_triage

    raw = yaml.safe_dump({"blocks": items, "flags": [], "info": []}).encode()
    try:
        result = parse_triage(raw)
    except TriageFormatError as err:
        assert "is empty" in str(err)
        says_nothing = [item for item in items if not (item.strip() if isinstance(item, str)
                        else isinstance(item, dict) and any(
                            isinstance(v, str) and v.strip() for v in item.values()))]
        assert says_nothing, (items, str(err))
        return
    assert len(result.blocks) == len(items)
    for item, line in zip(items, result.blocks, strict=True):
        values = [item] if isinstance(item, str) else list(item.values())
        for value in values:
            if isinstance(value, str) and value.strip():
                assert value.strip() in line
