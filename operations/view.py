"""What the commands print for a person: every agent-written value made inert."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from operations.common import (
    shown,
)

SHOWN = 20  # findings listed per kind by `status`; the rest are counted


def polling_line(host: dict[str, Any]) -> str:
    """Who polls a host queue, and when the server last saw a poll (it counts a stopped
    worker for up to 90 s, so the age tells more than the count)."""
    last = host.get("last_poll")
    age = None
    if last:
        seconds = max(0, int((datetime.now(UTC) - datetime.fromisoformat(last)).total_seconds()))
        age = f"last poll {seconds} s ago"
    if host["live_pollers"]:
        return f"{host['live_pollers']} worker(s) polling, {age}"
    return "no worker polling" + (f" ({age})" if age else "") + ": the stage waits for its host"


def from_now(moment: str) -> str:
    """How far ahead MOMENT (ISO) is, in the unit a person reads: s, min or h."""
    seconds = max(0, int((datetime.fromisoformat(moment) - datetime.now(UTC)).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    return f"{round(seconds / 60)} min" if seconds < 3600 else f"{round(seconds / 3600)} h"


def numbered(kind: str, count: int, items: list[str]) -> list[str]:
    """COUNT findings of KIND, each on its own numbered line; past SHOWN (or past what the
    workflow kept) only counted."""
    lines = [f"{kind}: {count}"]
    lines += [f"  {index}. {shown(item)}" for index, item in enumerate(items[:SHOWN], 1)]
    rest = count - min(len(items), SHOWN)
    if items and rest > 0:
        lines.append(f"  … and {rest} more")
    return lines


def findings_lines(progress: dict[str, Any]) -> list[str]:
    """The triage file, a refusal of it (never shown as a block), the blocks and flags."""
    lines = [f"triage file: {shown(progress['triage_path'])}"] if progress.get(
        "triage_path") else []
    refused = progress.get("triage_refused")
    blocks = [item for item in progress.get("findings") or [] if item != refused]
    block_count = progress.get("blocks") or 0
    if refused:
        lines.append(shown(refused))
        block_count = max(block_count - 1, len(blocks))  # the refusal is counted as one
    if block_count:
        lines += numbered("blocks", block_count, blocks)
    if progress.get("flags"):
        lines += numbered("flags", progress["flags"], progress.get("flag_findings") or [])
    return lines


def decision_lines(progress: dict[str, Any]) -> list[str]:
    """The decision, who took it and why; the deadline while it is due."""
    lines = []
    if progress.get("decision"):
        who = f" by {shown(progress['decided_by'])}" if progress.get("decided_by") else ""
        why = f": {shown(progress['decision_reason'])}" if progress.get("decision_reason") else ""
        lines.append(f"decision: {progress['decision']}{who}{why}")
    if progress.get("deadline"):
        lines.append(f"deadline: {progress['deadline']}")
    return lines


def stage_lines(result: dict[str, Any]) -> list[str]:
    """The stage and what it waits on: its task file, a retry, the agent, the host queue."""
    progress = result.get("progress") or {}
    lines = [f"stage: {shown(progress['stage'])}"] if progress else []
    if result.get("task_id"):
        where = result.get("task_file") or f"task {result['task_id']} (no file in this host's "\
                                            f"task directory)"
        lines.append(f"task file: {shown(where)}")
    if result.get("origin_file"):
        lines.append(f"originating task file: {shown(result['origin_file'])}")
    if progress:
        lines.append(f"done: {shown(', '.join(progress['stages_done'])) or '-'}")
    if result["status"] == "running" and progress:
        lines.append(f"waiting on: {shown(progress['waiting_on'] or '-')}")
    elif result.get("awaiting_task_id"):
        lines.append(f"waiting on: operator decision (originating task "
                     f"{shown(result['awaiting_task_id'])})")
    retry = result.get("retry")
    if retry:
        what = (f"waiting for {shown(retry['waiting_for'])}" if retry.get("waiting_for") else
                f"retrying {shown(retry['activity'])} ({shown(retry.get('last_failure'))})")
        lines.append(f"{what} (attempt {retry['attempt']} of "
                     f"{retry['maximum_attempts'] or 'unlimited'}, next in "
                     f"{from_now(retry['next_attempt'])})")
    beat = result.get("agent_progress")
    if beat:
        seconds = int((datetime.now(UTC) - datetime.fromisoformat(beat["at"])).total_seconds())
        lines.append(f"agent progress: {shown(beat['message']) or '-'} ({max(seconds, 0)} s ago)")
    host = result.get("host_queue")
    if host:
        lines.append(f"host queue: {shown(host['name'])} ({polling_line(host)})")
    if progress.get("alert"):
        lines.append(f"attention: {shown(progress['alert'])}")
    return lines


def status_lines(result: dict[str, Any]) -> list[str]:
    """`status` for a person: every agent-written value made inert (see `shown`)."""
    lines = [f"{shown(result['workflow_id'])} ({shown(result['type'])}): {result['status']}"]
    if result.get("reason"):
        lines.append(f"reason: {shown(result['reason'], 2000)}")
    if result.get("sweep_turn_held"):
        lines.append(f"sweep turn lock held 3 s or more: {shown(result['sweep_turn_held'])}; "
                     f"if this repeats, something other than a worker holds it, and file "
                     f"decisions and completions through the task queue wait (see the "
                     f"worker's sweep_turn_held)")
    lines += stage_lines(result)
    progress = result.get("progress") or {}
    lines += findings_lines(progress) + decision_lines(progress)
    if progress.get("outcome"):
        lines.append(f"outcome: {shown(progress['outcome'])}")
    if result.get("summary_path"):
        lines.append(f"summary: {shown(result['summary_path'])}")
    if result.get("note"):
        lines.append(result["note"])
    return [*lines, result["ui"]]


def list_lines(result: dict[str, Any]) -> list[str]:
    """`list` as a table with a header: build, start time, status, stage or outcome."""
    rows = [[shown(row["workflow_id"], 80), shown(row.get("build_name") or "-", 60),
             datetime.fromisoformat(row["started"]).strftime("%Y-%m-%d %H:%M:%S"),
             row["status"], shown(row["stage"] or row.get("outcome") or "-", 60)]
            for row in result["workflows"]]
    if not rows:
        return ["no builds found"] + ([result["note"]] if result.get("note") else [])
    table = [["WORKFLOW ID", "BUILD", "STARTED (UTC)", "STATUS", "STAGE/OUTCOME"], *rows]
    widths = [max(len(row[column]) for row in table) for column in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
             + "  " + row[4] for row in table]
    return lines + ([result["note"]] if result.get("note") else [])


def print_human(command: str, result: dict) -> None:
    if command in ("start", "plan"):
        lines = [f"started {result['workflow_id']}", result["ui"]]
    elif command == "list":
        lines = list_lines(result)
    elif command == "status":
        lines = status_lines(result)
    elif command in ("approve", "reject"):
        lines = [f"{result['workflow_id']}: {result['decision']} by {shown(result['by'])}"]
    else:
        lines = [f"{result['workflow_id']}: cancellation requested"]
    print("\n".join(lines))
