"""The task lookup phase: finding one task among many files, first and warm."""

from __future__ import annotations

import time
import uuid

from bench.context import Bench
from bench.measure import median, ms
from bench.report import verdict
from taskdir import TaskDirectory, TaskSpec, TaskStyle, dump, file_name, utc_now
from taskdir.index import RECENT_CHANGE_NS


def lookup(bench: Bench) -> None:
    """One task found among 100 to 10,000 files (half archived), first and then warm."""
    sizes = [100, 1000] if bench.quick else [100, 1000, 10000]
    for size in sizes:
        directory = bench.base / f"lookup-{size}"
        (directory / "archive").mkdir(parents=True)
        origin = None
        now = utc_now()
        for index in range(size):
            task_id = str(uuid.uuid4())
            spec = TaskSpec(task_id=task_id, target_agent="dev", task_type="build",
                            summary="x")
            target = directory / "archive" if index % 2 else directory
            raw = dump(TaskStyle().document(spec, "", now))
            (target / file_name(task_id, now)).write_bytes(raw)
            if index == size // 2:
                origin = task_id
        assert origin is not None
        # As an archive is in a worker: changed seconds ago, not within its mtime tick.
        time.sleep(RECENT_CHANGE_NS / 1e9 + 0.2)
        tasks = TaskDirectory(directory)
        started = time.perf_counter()
        assert tasks.find(origin) is not None
        cold = time.perf_counter() - started
        warm = []
        for _ in range(50):
            started = time.perf_counter()
            tasks.find(origin)
            warm.append(time.perf_counter() - started)
        bench.row(f"Task lookup among {size} files (median warm; first)",
                  f"{median(warm) * 1000:.3f} ms; first {ms(cold)}", "< 5 ms, flat",
                  verdict(median(warm) < 0.005))
