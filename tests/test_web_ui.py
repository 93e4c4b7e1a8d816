"""Browser proof: the Temporal Web UI (headless Chromium) shows what a parked build waits for
and the activity summaries."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

from connection.converter import DATA_CONVERTER
from testbed.agents import AgentSim, triage_writer
from testbed.helpers import buildctl, current_details, make_origin, plan_file, reaches_stage
from tests.browser import Browser

DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "web-ui-awaiting-decision.png"


async def wait_for_text(browser: Browser, needles: list[str], timeout: float = 45) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = " ".join((await browser.text()).split())  # as a reader sees it: spaces folded
        if all(" ".join(needle.split()) in text for needle in needles):
            return text
        await asyncio.sleep(0.3)
    raise AssertionError(f"UI never showed {needles}; page text was:\n{text[:12000]}")


def plain(markdown_text: str) -> list[str]:
    """The lines of a Markdown text as a page shows them: no emphasis, code marks or escapes."""
    text = re.sub(r"\\([\\`*_{}\[\]()#+\-.!|<>~])", r"\1", markdown_text)
    text = text.replace("**", "").replace("`", "")
    return [" ".join(line.lstrip("-* ").split()) for line in text.splitlines() if line.strip()]


async def activity_summaries(handle) -> list[str]:
    """The summary the workflow gave each activity it scheduled, as the server recorded it."""
    summaries = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes") and \
                event.user_metadata.HasField("summary"):
            summaries.append(DATA_CONVERTER.payload_converter.from_payload(
                event.user_metadata.summary, str))
    return summaries


async def test_workflow_page_shows_what_the_build_says(client, cfg, dirs, env, worker, server,
                                                      tmp_path):
    """The page shows the texts the product wrote (the summary buildctl gave the run, its
    Current Details with the block in its own words, each activity's summary), compared with
    what the server holds, not with what this test passed in."""
    script = dirs["home"] / "send-matrix.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    dirs["tasks"].mkdir(parents=True, exist_ok=True)
    origin = make_origin(dirs["tasks"])
    block = "docker socket mounted into the build container"
    behaviours = {"security_audit": triage_writer(dirs["audit"], {"blocks": [block]})}
    async with AgentSim(dirs["tasks"], env, behaviours):
        code, _, err = await buildctl(env, "start", "--build-name", "ui-demo", "--plan-path",
                                      plan_file(dirs), "--task-id", origin, "--agent", "dev",
                                      "--id", f"ui-demo-{os.getpid()}")
        assert code == 0, err
        handle = client.get_workflow_handle(f"ui-demo-{os.getpid()}")
        await reaches_stage(handle, "wait")
    summary = await (await handle.describe()).static_summary()
    details = plain(await current_details(handle))
    scheduled = await activity_summaries(handle)
    assert summary and any(block in line for line in details) and len(scheduled) >= 4
    url = f"http://127.0.0.1:{server.ui_port}/namespaces/default/workflows/{handle.id}"
    async with Browser() as browser:
        await browser.goto(url)
        await wait_for_text(browser, ["User Metadata"])
        assert await browser.click_text("User Metadata")
        await wait_for_text(browser, [summary, *details])
        for name in scheduled:
            await wait_for_text(browser, [name])
        shot = DOCS_SCREENSHOT if os.environ.get("UPDATE_DOCS_SCREENSHOT") else (
            tmp_path / "ui.png")
        await browser.screenshot(shot)
        assert shot.read_bytes().startswith(b"\x89PNG")
    await handle.terminate("done")
