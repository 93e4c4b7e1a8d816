"""Run our programs on the project's own interpreter, whatever `python3` the shell finds first."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent
# The project's venv (scripts/setup.sh), else a v0.5 checkout's `venv/` upgraded in place.
VENVS = (REPO_DIR / ".venv", REPO_DIR / "venv")
NEEDED = ("temporalio", "pydantic", "yaml")
_HOPPED = "TEMPORAL_BUILD_WORKER_REEXEC"  # set for the one re-run, so it can never loop
SETUP_EXIT = 6  # exceptions.Exit.CONFIG; this module imports nothing of ours


def project_python() -> Path | None:
    """The venv interpreter the project was set up with (None: not set up)."""
    for venv in VENVS:
        python = venv / "bin" / "python"
        if python.is_file() and os.access(python, os.X_OK):
            return python
    return None


def ensure_dependencies(program: str, script: str) -> None:
    """Return when this interpreter has the project's packages; else re-run SCRIPT with the
    project's venv (same arguments, stdin and environment), or exit 6 with one line."""
    hopped = os.environ.pop(_HOPPED, None)
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if not missing:
        return
    python = project_python()
    if python is not None and not hopped:
        os.environ[_HOPPED] = "1"
        os.execv(str(python), [str(python), str(Path(script).resolve()), *sys.argv[1:]])
    where = f"{python} lacks them" if python else "no .venv"
    print(f"{program}: the project's Python packages are not installed ({where}: no module "
          f"'{missing[0]}'); set up once with: {REPO_DIR}/scripts/setup.sh", file=sys.stderr)
    sys.exit(SETUP_EXIT)


def skip_grpc_stubs() -> None:
    """Let the SDK import without the Python gRPC stubs it marks optional: it talks to
    Temporal through its Rust core, and grpcio (installed for the OTLP exporter) would cost
    the worker about 8 MB of RSS. Call before the first temporalio import; `allow_grpc()`
    after the program's imports (an OTLP exporter may then load grpc)."""
    sys.modules.setdefault("grpc", None)  # type: ignore[arg-type]


def allow_grpc() -> None:
    if "grpc" in sys.modules and sys.modules["grpc"] is None:
        del sys.modules["grpc"]
