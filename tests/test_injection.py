"""Property tests: crafted inputs cannot break out of the YAML, the instruction or the wrapper."""

from __future__ import annotations

import re

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from activities import instructions
from models import BuildPipelineInput
from taskdir import TaskSpec, TaskStyle, dump, utc_now
from triage import wrap_findings

EXAMPLES = settings(max_examples=300, derandomize=True, deadline=None)
ALPHABET = [*"ab:-\n\r\t'\"#&*!|>{}[]%@`\\/. <>", "\u2028", "\x00", "\x85", "é", "\ud800"]
nasty = st.text(alphabet=st.sampled_from(ALPHABET),
                max_size=40)


@EXAMPLES
@given(summary=nasty, value=nasty, agent=nasty)
def test_task_file_round_trips_any_text(summary, value, agent):
    spec = TaskSpec(task_id="11111111-2222", target_agent=agent, task_type="build_plan",
                              summary=summary, payload={"description": value})
    document = TaskStyle().document(spec, "dG9rZW4=", utc_now())
    try:
        raw = dump(document)
    except UnicodeEncodeError:
        return  # lone surrogates cannot be written at all: nothing half-written
    loaded = yaml.safe_load(raw)
    assert list(loaded) == list(document)
    assert loaded["status"] == "submitted" and loaded["payload"]["task_token"] == "dG9rZW4="
    assert loaded["summary"] == summary and loaded["payload"]["description"] == value


@EXAMPLES
@given(build=nasty, plan=nasty, task=nasty, agent=nasty)
def test_accepted_inputs_are_single_safe_lines(build, plan, task, agent):
    try:
        params = BuildPipelineInput(build_name=build, plan_path=plan, task_id=task,
                                    target_agent=agent)
    except ValidationError:
        return
    for value in (params.build_name, params.plan_path, params.task_id, params.target_agent):
        assert not re.search(r"[\x00-\x1f\x7f\u2028\u2029\x85]", value)
    assert ".." not in params.plan_path.split("/")
    assert "/" not in params.target_agent and "/" not in params.task_id
    text = instructions.implement(params.build_name, params.task_id)
    assert text.splitlines()[-1].startswith("When done, run: python3 ")


@EXAMPLES
@given(st.lists(nasty, max_size=4))
def test_wrapper_survives_nasty_findings(findings):
    lines = wrap_findings(findings).split("\n")
    assert lines[0] == "<security-findings>" and lines[-1] == "</security-findings>"
    assert len(lines) == len(findings) + 2
