"""Give freed C heap back to the system: a worker's memory follows its load down, not its
peak. (How glibc allocates is set by the launcher's environment: bootstrap.ALLOCATOR_ENV.)"""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Callable

# Where glibc can say how much of its heap is free (mallinfo2), a trim follows within a
# second once the process grew a MiB since the last one and the heap holds a free MiB (a
# look: tens of microseconds; a trim 0.5 to 1.2 ms here, 40 MB freed in pieces); elsewhere
# one every TRIM_INTERVAL.
CHECK_INTERVAL = 1.0
TRIM_WORTH = 1 << 20
TRIM_INTERVAL = 30.0
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _libc() -> ctypes.CDLL | None:
    """The C library the process runs on (the global symbols: no library search, which would
    run `ldconfig` and import ctypes.util)."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _free_heap() -> Callable[[], int] | None:
    """Bytes in the C heap's free chunks (glibc >= 2.33's mallinfo2), or None."""
    info = getattr(_LIBC, "mallinfo2", None)
    if info is None:
        return None
    info.argtypes, info.restype = [], _MallInfo2
    return lambda: int(info().fordblks)


_LIBC = _libc()
_TRIM = _malloc_trim()
_FREE_HEAP = _free_heap()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system (imports, parsing and bursts leave many
    behind that glibc would otherwise keep); False where this C library cannot."""
    return bool(_TRIM is not None and _TRIM(0) >= 0)


def resident() -> int | None:
    """This process's resident bytes (None where /proc cannot say)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


async def release_forever(free_heap: Callable[[], int] | None = _FREE_HEAP) -> None:
    """Release once now (the start's garbage), then soon after a burst (parking builds, a
    throughput peak) leaves free heap behind, or every TRIM_INTERVAL without FREE_HEAP."""
    await asyncio.to_thread(release_free_memory)
    baseline = resident()  # right after the last trim, lowered as the process shrinks
    if free_heap is None or baseline is None:
        while True:
            await asyncio.sleep(TRIM_INTERVAL)
            await asyncio.to_thread(release_free_memory)
    while True:
        await asyncio.sleep(CHECK_INTERVAL)
        now = resident() or baseline
        baseline = min(baseline, now)
        if now - baseline >= TRIM_WORTH and free_heap() >= TRIM_WORTH:
            await asyncio.to_thread(release_free_memory)
            baseline = resident() or now
