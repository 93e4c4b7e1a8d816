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


@pytest.mark.parametrize("kind", ["directory", "link"])
async def test_an_unusable_log_file_is_exit_6_in_one_line(env, tmp_path, kind):
    """A LOG_FILE the worker cannot open is a configuration error (exit 6, one JSON line
    naming LOG_FILE), not a traceback and exit 1."""
    target = tmp_path / "logs"
    if kind == "directory":
        target.mkdir()
    else:
        target.symlink_to(tmp_path / "elsewhere.log")
    worker = WorkerProcess({**env, "LOG_FILE": str(target)}, tmp_path / "worker.log")
    worker.start()
    try:
        code = await worker.wait_exit(60)
    finally:
        worker.kill()
    assert code == Exit.CONFIG, worker.log.read_text()[-2000:]
    assert [(e["event"], e["error"][:9]) for e in worker.events()] == [
        ("config_invalid", "LOG_FILE:")]
    assert not (tmp_path / "elsewhere.log").exists()
