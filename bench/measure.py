"""The bench's measuring tools, shared by every phase: figures, CPU and memory of a process."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from testbed.processes import WorkerProcess

# Pause between hand-off samples, for ours and the floor alike: back-to-back samples (one
# every ~20 ms) push the dev server's task dispatch from ~3 ms to ~40 ms per hop after four
# workflows (seen in history event times), which agents minutes apart never cause.
SAMPLE_GAP = 0.5


def ms(seconds: float) -> str:
    """A duration as the table shows it."""
    return f"{seconds * 1000:.1f} ms"


def median(values: list[float]) -> float:
    """The figure the table reports unless it says otherwise."""
    return statistics.median(values)


def p99(values: list[float]) -> float:
    """The 99th percentile, nearest rank: the decision target is on it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@contextlib.contextmanager
def busy_core() -> Iterator[None]:
    """Keep one core busy (a spinning process) for a loaded measurement."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds PID has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(worker: WorkerProcess) -> float:
    """The worker process's resident set in MB."""
    assert worker.process is not None
    return rss_of(worker.process.pid)


def rss_of(pid: int) -> float:
    """Resident set of PID in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
