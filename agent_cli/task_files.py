"""The agent's own task file: its token and where its stage lives, read as the worker reads
what agents could have written; finished at once when the call went through."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from connection.settings import StageLocation, stage_location
from contract import DEFAULT_TASK_DIR, LOCATION_FIELD, TASK_DIR_VARIABLE, TOKEN_FIELD, token_text
from exceptions import Exit, ExitError


class TokenSource(NamedTuple):
    """Where the token came from: its text, and the task file (and what it says) if any."""

    token: str
    path: str | None = None
    place: StageLocation | None = None
    maybe_old: bool = False  # its file was offered more than once, or is a copy elsewhere
    withdrawn: bool = False  # its file says the stage was cancelled


def read_task_file(path: str) -> TokenSource:
    """payload.task_token of a task YAML file, read as the worker reads what agents could
    have written (bounded, no link; what the lean reader does not fully understand goes to
    the safe full loader), with where its stage lives (payload.temporal), whether it was
    offered more than once and whether its stage was withdrawn."""
    from safeio.regular import InputRefused
    from taskdir.moves import CANCELLED
    from taskdir.reading import load, offers

    try:
        document = load(Path(path), lean=True)
    except OSError as err:
        reason = "is a symlink" if err.errno == errno.ELOOP else err.strerror
        raise ExitError(f"cannot read task file {path}: {reason}", Exit.USAGE) from None
    except InputRefused as err:
        raise ExitError(f"cannot read task file {path}: {err}", Exit.USAGE) from None
    except Exception as err:  # ValueError, or the full loader's yaml.YAMLError
        if not isinstance(err, ValueError) and not _yaml_error(err):
            raise
        detail = str(err) if isinstance(err, ValueError) else "not valid YAML"
        raise ExitError(f"task file {path}: {detail}", Exit.INVALID) from None
    token = token_text(document)
    if token is None:
        raise ExitError(f"task file {path} has no payload.{TOKEN_FIELD}", Exit.INVALID)
    maybe_old = offers(document) > 1 or Path(path).resolve().parent != task_dir().resolve()
    return TokenSource(token, path, location_in(document, path), maybe_old,
                       document.get("status") == CANCELLED)


def _yaml_error(err: Exception) -> bool:
    """Whether ERR is PyYAML's (loaded only when the full loader was needed)."""
    yaml = sys.modules.get("yaml")
    return yaml is not None and isinstance(err, yaml.YAMLError)


def location_in(document: dict[str, Any], path: object) -> StageLocation | None:
    """Where the stage of the task file DOCUMENT (at PATH) lives, or None if it does not say."""
    payload = document.get("payload")
    try:
        return stage_location(payload.get(LOCATION_FIELD) if isinstance(payload, dict) else None)
    except ValueError as err:
        raise ExitError(f"task file {path}: {err}", Exit.INVALID) from None


def stage_withdrawn(task_file: str | None) -> bool:
    """Whether the task file says the stage was cancelled (the run may be gone already)."""
    if task_file is None:
        return False
    from taskdir.moves import CANCELLED
    from taskdir.reading import load

    try:
        return load(Path(task_file), lean=True).get("status") == CANCELLED
    except Exception:
        return False


def load_settling() -> None:
    """Import what settle_own_file needs while the server answers (off the critical path);
    never fails here (it must not change what the call reports): settle_own_file says what
    went wrong, after the answer."""
    with contextlib.suppress(Exception):
        import taskdir.finishing
        import taskdir.moves  # noqa: F401


def settle_own_file(path: Path, status: str, message: str, lean: bool = True) -> None:
    """The stage is done: say so in its task file at once, so that it never looks like open
    work to another agent (the worker's own settlement then finds it finished). LEAN: without
    PyYAML or the directory's index when the lean reader and emitter are sure."""
    from taskdir.moves import FINAL_STATUS

    moved = FINAL_STATUS[status]
    note = f"stage {moved} with complete_activity.py"
    path = path.parent.resolve() / path.name  # the directory's own path, whatever was typed
    try:
        if lean:
            from taskdir.finishing import finish

            if finish(path, moved, note, message, finisher):
                return
        from taskdir import TaskDirectory, load

        document = load(path)
        TaskDirectory(path.parent).finish(str(document.get("id")), moved, note,
                                          output=message, by=finisher(document), path=path)
    except Exception as err:  # the completion went through; the worker settles the file too
        print(f"complete_activity: note: task file not updated ({type(err).__name__}); the "
              f"worker settles it", file=sys.stderr)


def finisher(document: dict[str, Any]) -> str:
    """Who finished the stage, as its task file's result and history say."""
    return str(document.get("target_agent") or "complete_activity")


def task_dir() -> Path:
    """This host's task directory, as the agents' tooling finds it."""
    return Path(os.environ.get(TASK_DIR_VARIABLE) or DEFAULT_TASK_DIR).expanduser()


def files_holding(token_text: str, token: bytes) -> list[Path]:
    """The task files in this host's task directory that hold TOKEN_TEXT (the token was
    given without --task-file): none, one, or two when a copy was planted beside it (it stops
    at two). Bounded: regular files of ours up to 1 MiB, the ones named for a stage of the
    token's run first, then the newest first."""
    from connection.task_token import read_task_token

    try:
        run_id = read_task_token(token).run_id
    except ValueError:
        return []
    from stages import run_task_keys
    from taskdir.names import id_prefix, stage_task_id

    root = task_dir()
    needle = token_text.encode("ascii", "ignore")
    if len(needle) < 16:
        return []
    try:
        with os.scandir(root) as entries:
            names = sorted((entry.name for entry in entries if entry.name.endswith(".yml")),
                           reverse=True)
    except (OSError, ValueError):
        return []
    ours = {stage_task_id(run_id, key)[:8] for key in run_task_keys()}
    named = [name for name in names if id_prefix(name) in ours]
    found: list[Path] = []
    for name in [*named, *(name for name in names if name not in named)]:
        if _holds(root / name, needle):
            found.append(root / name)
            if len(found) == 2:
                break
    return found


def _holds(path: Path, needle: bytes) -> bool:
    """Whether the regular file at PATH (not a link, at most a task file's size) has NEEDLE."""
    from safeio.regular import read_regular
    from taskdir.reading import MAX_TASK_FILE_BYTES

    try:
        return needle in read_regular(path, MAX_TASK_FILE_BYTES)
    except (OSError, ValueError):  # gone, a link, not a file, too large
        return False
