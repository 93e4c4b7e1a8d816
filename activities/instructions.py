"""The text of each agent stage's task file: the stage table's templates, and the contract's
completion command appended."""

from __future__ import annotations

import shlex
import sys
from typing import Any

from config import REPO_DIR
from findings import wrap_findings
from stages import Stage

# The interpreter this worker runs on: it has the packages, whatever `python3` the agent has.
COMPLETE = f"{shlex.quote(sys.executable)} {shlex.quote(str(REPO_DIR / 'complete_activity.py'))}"


def finish_line(output_hint: str) -> str:
    """The --task-file form first: a token on a command line is visible to every local user."""
    return (
        f"When done, run: {COMPLETE} --task-file <path of this task file> success "
        f"\"<{output_hint}>\". If you cannot finish, run the same command with "
        f"'failed \"<why>\"' instead. (Also accepted, but it shows the token to other "
        f"local users: {COMPLETE} $TASK_TOKEN success \"<{output_hint}>\", with TASK_TOKEN "
        f"= payload.task_token.)"
    )


def progress_line(heartbeat_timeout: float | None) -> str:
    """How to report progress (heartbeats), and how often it is expected."""
    how = (f"at least every {max(heartbeat_timeout / 2, 1):g} s: a stage silent for "
           f"{heartbeat_timeout:g} s is offered again or failed" if heartbeat_timeout
           else "every few minutes on long work (optional here)")
    return (f"Report progress while you work, {how}: {COMPLETE} heartbeat --task-file <path "
            f"of this task file> \"<what you are doing>\". If it exits 8, the stage was "
            f"cancelled: stop.")


def _template_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The payload fields, plus what the templates derive from them."""
    flags = list(fields.get("flags") or [])
    cut = int(fields.get("flags_cut") or 0)
    build = fields.get("build_name", "")
    refs = "".join(f"\n- {ref}" for ref in fields.get("context_refs") or [])
    plan = fields.get("plan_path")
    return {
        "build_name": build, **fields,
        "plan_at": f" at {plan}" if plan else "",
        "flag_count": len(flags), "finding_count": len(flags) + cut,
        "findings": wrap_findings(flags) if flags else "",
        "findings_left_out": (f"{cut} more finding(s) were left out to keep this file "
                              f"readable: read them in the audit's triage-output.yml (flags) "
                              f"for build '{build}'.\n" if cut else ""),
        "context": f"\nContext to read first:{refs}" if refs else "",
        "description_line": " ".join(str(fields.get("description", "")).split())[:200],
    }


def texts(stage: Stage, fields: dict[str, Any]) -> tuple[str, str]:
    """The task file's one-line summary (the upstream contract's wording) and what the agent
    is asked, then how it finishes the stage."""
    values = _template_fields(fields)
    return (stage.summary.format(**values),
            stage.instruction.format(**values) + finish_line(stage.output_hint))
