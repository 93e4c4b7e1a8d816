"""worker.py as operators and PM2 run it: how it ends, by its exit code."""

from __future__ import annotations

import signal

import pytest

from exceptions import Exit
from testbed.processes import WorkerProcess


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_stop_signal_ends_the_worker_with_exit_0(env, tmp_path, sig):
    """Ctrl-C at a terminal and `pm2 stop` are a clean stop: exit 0, `worker_stopped` said,
    no traceback (configuration.md's exit codes)."""
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    try:
        await worker.wait_event("worker_started")
        assert worker.process is not None
        worker.process.send_signal(sig)
        code = await worker.wait_exit(60)
    finally:
        worker.kill()
    assert code == Exit.OK, worker.log.read_text()[-2000:]
    assert [e["event"] for e in worker.events()].count("worker_stopped") == 1
    assert "Traceback" not in worker.log.read_text()
