"""allocator.py: freed C heap goes back when released; with the launcher's allocator
environment (bootstrap.ALLOCATOR_ENV) large blocks go back at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bootstrap import ALLOCATOR_ENV

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import sys
sys.path.insert(0, sys.argv[1])
from allocator import release_free_memory

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
"""

BURST = PRELUDE + """
chunks = [bytearray(64 * 1024) for _ in range(3000)]  # ~190 MB on the C heap, not mmap'd
pin = bytearray(64 * 1024)  # keeps the heap's top in use: free() alone cannot shrink it
del chunks
before = rss_kib()
assert release_free_memory()
print(before, rss_kib())
"""


def test_a_freed_burst_leaves_the_process_when_released():
    out = subprocess.run([sys.executable, "-c", BURST, str(ROOT)], capture_output=True,
                         text=True, check=True).stdout.split()
    before, after = int(out[0]), int(out[1])
    assert before - after > 150 * 1024, (before, after)  # most of the 190 MB went back


LARGE = PRELUDE + """
first = bytearray(1024 * 1024)  # glibc's own rule: freeing a mapped block raises the
del first  # threshold to its size, so the blocks below would land on the heap
chunks = [bytearray(512 * 1024) for _ in range(300)]  # ~150 MB
pin = bytearray(64 * 1024)  # on the heap, above whatever of the burst landed there
before = rss_kib()
del chunks
print(before, rss_kib())
"""


def burst_left(allocator_env: dict[str, str]) -> int:
    """KiB of a freed 150 MB burst of large blocks still resident (no trim called), in a
    process started with ALLOCATOR_ENV (glibc reads it only as a process starts)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", LARGE, str(ROOT)], env={**env, **allocator_env},
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[1]) - (int(out[0]) - 150 * 1024)


def test_large_blocks_leave_at_once_with_the_launchers_allocator_environment():
    assert burst_left(ALLOCATOR_ENV) < 20 * 1024  # every block was its own mapping
    assert burst_left({}) > 100 * 1024  # glibc's default keeps them (what the setting is for)


PROMPT = PRELUDE + """
import asyncio
import allocator
allocator.CHECK_INTERVAL = 0.05

PINS = []

async def burst_released() -> bool:
    chunks = [bytearray(64 * 1024) for _ in range(3000)]  # ~190 MB on the C heap
    PINS.append(bytearray(64 * 1024))  # above them: free() alone cannot shrink the heap
    before = rss_kib()
    del chunks  # no release called here
    for _ in range(200):
        await asyncio.sleep(0.05)
        if before - rss_kib() > 150 * 1024:
            return True
    return False

async def main():
    watcher = asyncio.create_task(allocator.release_forever())
    first = await burst_released()  # by the watcher's first release or by its watch
    print(first, await burst_released())  # by its watch alone

asyncio.run(main())
"""


def test_a_freed_burst_leaves_soon_without_being_asked():
    out = subprocess.run([sys.executable, "-c", PROMPT, str(ROOT)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["True", "True"]
