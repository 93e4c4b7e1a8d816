"""The benchmark runner keeps working (quick mode); it is a smoke run, not a timing test."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testbed.processes import ROOT


@pytest.mark.server
# The run's own limit (600 s) rules, not the suite's 300 s: a loaded machine takes ~6 min.
@pytest.mark.timeout(660)
def test_quick_benchmark_writes_a_full_table(tmp_path):
    output = tmp_path / "bench.md"
    subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--output", str(output)],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    rows = [line for line in output.read_text().splitlines() if line.startswith("| ")]
    measures = [row.split("|")[1].strip() for row in rows[1:]]
    for expected in ("Hand-off, agent CLI", "Hand-off, in-process", "Floor", "Agents' CLI wall",
                     "Start → first task file", "Worker CPU per sample", "Worker RSS idle",
                     "peak RSS", "signal `approve`", "task file `approved`", "Worker RSS",
                     "per 1,000 parked", "pipelines parked (idle", "Floor worker RSS",
                     "blocked pipeline's commands",
                     "builds completed ÷ idle", "runs in the same bursts",
                     "after one local activity", "as the contract asks", "read again",
                     "that floor's start", "naming in its memo", "The memo floor's",
                     "Fresh hand-off", "Throughput", "Task lookup", "Cluster: hand-off",
                     "Cluster: hand-off, in-process ÷ floor", "Cluster: the memo floor's",
                     "Cluster: fresh hand-off", "Cluster: worker RSS",
                     "Cluster: throughput", "Agents' CLI over HTTP", "HTTP ÷ gRPC"):
        assert any(expected in measure for measure in measures), expected
    assert "## What dominates each figure" in output.read_text()
