"""Replay recorded histories: a change that would break running workflows fails here.

`histories/*.json` are ours (re-record deliberately with `python -m tests.record_histories`);
`histories/v0.5/` were recorded from the original v0.5 worker and must replay for ever.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import WORKFLOWS

ROOT = Path(__file__).parent / "histories"
OURS = sorted(ROOT.glob("*.json"))
V05 = sorted((ROOT / "v0.5").glob("*.json"))


def test_histories_are_present():
    names = {path.stem for path in OURS}
    assert {"pipeline-clean", "pipeline-flags", "pipeline-blocks-approved",
            "pipeline-blocks-rejected", "pipeline-cancelled", "plan", "pipeline-routed"} <= names
    assert len(V05) == 11


@pytest.mark.parametrize("path", OURS + V05, ids=[p.stem for p in OURS + V05])
async def test_replay(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
