"""The bench's report: the rows as they are measured, their verdicts, and the Markdown page
(docs/benchmarks.md) they end in."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from testbed.processes import ROOT

DOC = ROOT / "docs" / "benchmarks.md"
NOTES = ROOT / "bench" / "NOTES.md"

Row = tuple[str, str, str, str]  # measure, figure, target, result


def verdict(met: bool) -> str:
    """A target's result as the table words it."""
    return "met" if met else "missed"


@dataclass
class Report:
    """The rows of one run, printed as they come so a long run shows its progress."""

    rows: list[Row] = field(default_factory=list)

    def row(self, what: str, figure: str, target: str, result: str) -> None:
        """Keep one row and print it at once."""
        self.rows.append((what, figure, target, result))
        print(f"{what}: {figure} (target {target}) {result}", flush=True)


def cpu_model() -> str:
    """The machine's CPU, named in the page's first line: figures depend on it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def render(rows: list[Row], quick: bool) -> str:
    """The page: where and how it ran, the table, then the notes that explain the figures."""
    lines = [
        "# Benchmarks", "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python -m bench.run"
        f"{' --quick' if quick else ''}` on {os.cpu_count()} cores ({cpu_model()}), "
        f"Python {platform.python_version()}, Temporal CLI dev server v1.5.1 (SQLite); the "
        "`Cluster:` rows on the Temporal server v1.29.1 on PostgreSQL 15, two "
        "history/matching nodes, 16 shards (testbed/cluster.py).",
        "Figures are medians unless marked; ratios come from the same run.", "",
        "| measure | figure | target | result |", "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", NOTES.read_text().strip(), ""]
    return "\n".join(lines)
