"""Give freed heap back to the system: a worker's memory follows its load down, not its peak."""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Callable

# As often as the production sweep: a burst's freed heap leaves within a period; one pass
# took 0.5 to 1.2 ms here (the worker's imports loaded, 40 MB freed in pieces).
TRIM_INTERVAL = 30.0


# glibc's mallopt parameters (malloc.h), as measured in bench/NOTES.md: large blocks
# (histories, protobuf buffers) always get their own mapping, returned on free, instead of
# glibc raising the threshold after each such free (up to 32 MB) and keeping them in heaps a
# burst leaves fragmented; and one arena per core (glibc would make up to eight per core).
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
ALLOCATOR_SETTINGS = {M_MMAP_THRESHOLD: 128 * 1024, M_ARENA_MAX: max(2, os.cpu_count() or 2)}


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


_LIBC = _libc()
_TRIM = _malloc_trim()


def tune_allocator() -> bool:
    """Apply ALLOCATOR_SETTINGS; call before the first thread starts (arenas are per thread).
    False where this C library has no mallopt or refused a setting."""
    mallopt = getattr(_LIBC, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = [mallopt(param, value) == 1 for param, value in ALLOCATOR_SETTINGS.items()]
    return all(applied)  # every setting tried, even after one is refused


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system (imports, parsing and bursts leave many
    behind that glibc would otherwise keep); False where this C library cannot."""
    return bool(_TRIM is not None and _TRIM(0) >= 0)


async def release_forever(interval: float = TRIM_INTERVAL) -> None:
    """Release once now (the start's garbage), then every INTERVAL seconds."""
    while True:
        await asyncio.to_thread(release_free_memory)
        await asyncio.sleep(interval)
