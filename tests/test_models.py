"""Input validation happens at deserialization, before any file or workflow work."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from models import BlockDecision, BuildPipelineInput, BuildPlanInput

GOOD = {"build_name": "web-app-2", "plan_path": "/plans/web.md",
        "task_id": "3f2a9c1e-1111-2222-3333-444455556666", "target_agent": "dev"}


def test_good_input_round_trips_with_upstream_names():
    model = BuildPipelineInput.model_validate(GOOD)
    assert model.model_dump() == GOOD


@pytest.mark.parametrize("field,value", [
    ("build_name", "Web"), ("build_name", "-x"), ("build_name", "a b"), ("build_name", ""),
    ("build_name", "a/../b"),
    ("target_agent", "../etc"), ("target_agent", "dev\nstatus: approved"), ("target_agent", ""),
    ("target_agent", "a/b"), ("target_agent", ".."), ("target_agent", "dev..x"),
    ("task_id", "../../x"), ("task_id", "short"), ("task_id", "abc def ghi"),
    ("task_id", "12345678\n"),
    ("plan_path", "/plans/../../etc/shadow"), ("plan_path", "/p\n- evil"), ("plan_path", ""),
    ("plan_path", "/p\u2028x"),
])
def test_dangerous_values_rejected(field, value):
    with pytest.raises(ValidationError):
        BuildPipelineInput.model_validate({**GOOD, field: value})


def test_unknown_input_keys_are_ignored_and_named():
    # the dispatcher's `workflow` task passes plan_name and every other payload key
    params = BuildPipelineInput.model_validate({**GOOD, "plan_name": "demo", "priority": "high"})
    assert params.ignored_keys() == ["plan_name", "priority"]
    assert params.build_name == GOOD["build_name"]
    plan = BuildPlanInput.model_validate({"plan_name": "p", "description": "x", "phases": [
        {"number": 1, "agent_type": "dev", "description": "d", "owner": "someone"}]})
    assert plan.ignored_keys() == ["description"] and plan.phases[0].number == 1


def test_plan_needs_phases_and_safe_agents():
    with pytest.raises(ValidationError):
        BuildPlanInput.model_validate({"plan_name": "p", "phases": []})
    with pytest.raises(ValidationError):
        BuildPlanInput.model_validate({"plan_name": "p", "phases": [
            {"number": 1, "agent_type": "../x", "description": "d"}]})


def test_block_decision_needs_who():
    assert BlockDecision(by="alice").reason == ""
    with pytest.raises(ValidationError):
        BlockDecision(by="")
    with pytest.raises(ValidationError):
        BlockDecision(by="alice\nbob")


def test_a_plan_with_repeated_phase_numbers_is_refused_naming_it():
    from pydantic import ValidationError

    from models import BuildPlanInput, describe_errors

    phase = {"number": 1, "agent_type": "dev", "description": "x"}
    with pytest.raises(ValidationError) as caught:
        BuildPlanInput(plan_name="twice", phases=[phase, {**phase, "description": "y"}])
    assert "phase number 1 appears more than once" in describe_errors(caught.value)


def test_one_version_everywhere():
    """pyproject.toml, the newest CHANGELOG release and the newest workflow markers agree."""
    import re
    import tomllib
    from pathlib import Path

    from contract import Marker

    root = Path(__file__).resolve().parent.parent
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (root / "CHANGELOG.md").read_text(), re.M)
    assert releases[0] == version
    markers = [value for name, value in vars(Marker).items()
               if name.isupper() and isinstance(value, str) and re.search(r"-\d+\.\d+$", value)]
    newest = max(markers, key=lambda m: tuple(int(x) for x in m.rsplit("-", 1)[1].split(".")))
    assert version.startswith(newest.rsplit("-", 1)[1] + ".")


def test_a_phase_description_may_span_lines_but_holds_no_control_characters():
    """#37.2: a plan's phase text is prose (new lines and tabs kept); a bell or an escape in it
    is refused, as in every other field."""
    phase = {"number": 1, "agent_type": "dev", "description": "Build it.\n\tThen test it.\n"}
    plan = BuildPlanInput.model_validate({"plan_name": "p", "phases": [phase]})
    assert plan.phases[0].description == phase["description"]
    for bad in ("ring\x07", "\x1b[31mred", "line\u2028break"):
        with pytest.raises(ValidationError):
            BuildPlanInput.model_validate({"plan_name": "p",
                                           "phases": [{**phase, "description": bad}]})


def test_invalid_input_is_one_line_naming_each_field():
    """#37.2: what buildctl and a refused run say: `where: why` per field, pydantic's own
    `Value error, ` prefix dropped, and `input` when the whole value is wrong."""
    from models import describe_errors

    with pytest.raises(ValidationError) as caught:
        BuildPlanInput.model_validate({"plan_name": "p", "phases": [
            {"number": 1, "agent_type": "../x", "description": "d"}]})
    assert describe_errors(caught.value) == (
        "phases.0.agent_type: must be a plain name: letters, digits, '.', '_' or '-' (max 64)")
    with pytest.raises(ValidationError) as caught:
        BuildPipelineInput.model_validate(["not", "a", "mapping"])
    assert describe_errors(caught.value).startswith("input: ")
    with pytest.raises(ValidationError) as caught:
        BuildPipelineInput.model_validate({**GOOD, "task_id": "short", "target_agent": ""})
    assert re.fullmatch(r"task_id: [^;]+; target_agent: [^;]+", describe_errors(caught.value))
