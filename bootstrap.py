"""Run our programs on the project's own interpreter, whatever `python3` the shell finds first."""

from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent
# The project's venv (scripts/setup.sh), else a v0.5 checkout's `venv/` upgraded in place.
VENVS = (REPO_DIR / ".venv", REPO_DIR / "venv")
NEEDED = ("temporalio", "pydantic", "yaml")
_HOPPED = "TEMPORAL_BUILD_WORKER_REEXEC"  # set for the one re-run, so it can never loop
SETUP_EXIT = 6  # exceptions.Exit.CONFIG; this module imports nothing of ours
# A long-lived worker's interpreter: no docstrings, no column tables in code objects (a
# traceback keeps its lines, without the ^^^ under the failing part): ~2 MB and ~0.3 MB.
LEAN_FLAGS = ("-OO", "-X", "no_debug_ranges")


def project_python() -> Path | None:
    """The venv interpreter the project was set up with (None: not set up)."""
    for venv in VENVS:
        python = venv / "bin" / "python"
        if python.is_file() and os.access(python, os.X_OK):
            return python
    return None


# glibc's allocator for a long-lived worker, read by glibc only when a process starts: large
# blocks (histories, protobuf buffers) always get their own mapping, returned on free (glibc
# would raise the threshold after each such free, up to 32 MB, and keep them in heaps a burst
# leaves fragmented); the heap's top is trimmed past 128 KiB; two arenas, not eight per core.
# The launchers set the same (ecosystem.config.js, scripts/run.sh); a value set stays.
ALLOCATOR_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072",
                 "MALLOC_TRIM_THRESHOLD_": "131072"}


def ensure_dependencies(program: str, script: str, *, lean: bool = False) -> None:
    """Return when this interpreter has the project's packages (and, LEAN, runs with
    LEAN_FLAGS and ALLOCATOR_ENV); else re-run SCRIPT with the project's venv (same arguments,
    stdin and environment, plus ALLOCATOR_ENV if LEAN), or exit 6 with one line. LEAN_FLAGS
    leave docstrings and column tables out of every loaded module, memory a long-lived process
    would hold for nothing (bench/NOTES.md). -OO also drops asserts: our code has none, and
    nothing we use reads a docstring."""
    hopped = os.environ.pop(_HOPPED, None)
    missing = [name for name in NEEDED if importlib.machinery.PathFinder.find_spec(name) is None]
    lean_already = sys.flags.optimize >= 2 and "no_debug_ranges" in sys._xoptions and \
        ALLOCATOR_ENV.keys() <= os.environ.keys()
    if not missing and (not lean or lean_already):
        return
    own = Path(sys.executable) if sys.executable else None  # this one, re-run lean
    python = project_python() if missing else own
    if python is not None and not hopped:
        os.environ[_HOPPED] = "1"
        if lean:  # glibc reads them as the new program starts
            for name, value in ALLOCATOR_ENV.items():
                os.environ.setdefault(name, value)
        flags = list(LEAN_FLAGS) if lean else []
        os.execv(str(python), [str(python), *flags, str(Path(script).resolve()), *sys.argv[1:]])
    if not missing:
        return  # could not re-run itself lean: runs as it is, only heavier
    where = f"{python} lacks them" if python else "no .venv"
    print(f"{program}: the project's Python packages are not installed ({where}: no module "
          f"'{missing[0]}'); set up once with: {REPO_DIR}/scripts/setup.sh", file=sys.stderr)
    sys.exit(SETUP_EXIT)


# What the SDK imports at its first import for services and executors our programs never use:
# Temporal Cloud's and the test server's messages, and the multiprocessing manager its
# activity worker offers to process-pool activities (with its pool and shared memory).
DEFERRED_MODULES = frozenset({"temporalio.api.cloud.cloudservice.v1",
                              "temporalio.api.testservice.v1", "multiprocessing.managers"})


class _DeferredModules:
    """Import the modules of DEFERRED_MODULES when they are first used, not when imported (a
    meta path finder; importlib.util is loaded only when one of them is asked for)."""

    def find_spec(self, name: str, path: list[str] | None = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name not in DEFERRED_MODULES:
            return None
        import importlib.util

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def lighten_sdk_import() -> None:
    """Import the SDK without what our programs never use: grpcio's Python stubs (the SDK marks
    them optional and talks to Temporal through its Rust core; their memory and import time
    buy us nothing) and DEFERRED_MODULES (each loaded if ever used). Call before
    the first temporalio import; a program that may load an OTLP exporter calls `allow_grpc()`
    after its imports."""
    sys.modules.setdefault("grpc", None)  # type: ignore[arg-type]
    if not any(isinstance(finder, _DeferredModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferredModules())


def allow_grpc() -> None:
    if "grpc" in sys.modules and sys.modules["grpc"] is None:
        del sys.modules["grpc"]
