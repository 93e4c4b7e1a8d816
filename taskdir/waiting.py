"""A write that meets a held task lock waits in asyncio, never in a thread others need."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from taskdir.index import LookupIncomplete, said_once
from taskdir.locks import TaskLocked

T = TypeVar("T")
log = logging.getLogger("taskdir")
MAX_DELAY = 2.0  # seconds between tries once a lock has been held a while


async def patiently(call: Callable[..., T], *args: Any, on_wait: Callable[[], None] | None = None,
                    give_up_after: float | None = None, **kwargs: Any) -> T:
    """Run CALL in a thread; while it meets a held lock (TaskLocked), report the lock file
    once, then try again with a growing pause (no thread held meanwhile); a lookup whose read
    budget ran out (LookupIncomplete) goes on the same way. After GIVE_UP_AFTER seconds the
    error is raised (the caller's retry policy takes over)."""
    delay, started, said = 0.05, time.monotonic(), False
    while True:
        try:
            return await asyncio.to_thread(call, *args, **kwargs)
        except (TaskLocked, LookupIncomplete) as err:
            if isinstance(err, LookupIncomplete):
                said_once("task_lookup_incomplete", "writes", str(err))
            elif not said:
                said = True
                log.warning("task_lock_held", extra={"lock_file": str(err.lock_path),
                                                     "effect": "retried without a thread"})
            if give_up_after is not None and time.monotonic() - started > give_up_after:
                raise
        if on_wait is not None:
            on_wait()
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)
