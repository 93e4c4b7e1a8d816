"""Browser proof: the Temporal Web UI (headless Chromium) shows what a parked build waits for
and the activity summaries."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from testbed.agents import AgentSim, triage_writer
from testbed.helpers import reaches_stage, start_pipeline
from tests.browser import Browser

DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "web-ui-awaiting-decision.png"


async def wait_for_text(browser: Browser, needles: list[str], timeout: float = 45) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = await browser.text()
        if all(needle in text for needle in needles):
            return text
        await asyncio.sleep(0.3)
    raise AssertionError(f"UI never showed {needles}; page text was:\n{text[:12000]}")


async def test_workflow_page_shows_waiting_details_and_summaries(client, cfg, dirs, env, worker,
                                                                 server, tmp_path):
    script = dirs["home"] / "send-matrix.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    behaviours = {"security_audit": triage_writer(dirs["audit"], {"blocks": ["socket"]})}
    async with AgentSim(dirs["tasks"], env, behaviours):
        handle = await start_pipeline(
            client, cfg.task_queue, dirs["tasks"], "ui-demo",
            static_summary="Build ui-demo for agent dev",
            static_details="Plan: /plans/ui-demo.md")

        await reaches_stage(handle, "wait")
    url = f"http://127.0.0.1:{server.ui_port}/namespaces/default/workflows/{handle.id}"
    async with Browser() as browser:
        await browser.goto(url)
        await wait_for_text(browser, ["User Metadata"])
        assert await browser.click_text("User Metadata")
        await wait_for_text(browser, ["Stage: wait", "Waiting on: operator decision",
                                      "approve or reject", "deadline",
                                      "Build ui-demo for agent dev",
                                      "prefab · agent claudebox · task",
                                      "audit · agent security-agent"])
        shot = DOCS_SCREENSHOT if os.environ.get("UPDATE_DOCS_SCREENSHOT") else (
            tmp_path / "ui.png")
        await browser.screenshot(shot)
        assert shot.read_bytes().startswith(b"\x89PNG")
        text = await browser.text()
    assert "notify · 1 block(s)" in text
    await handle.terminate("done")
