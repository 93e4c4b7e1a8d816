"""Drive Debian's headless Chromium over the DevTools protocol (no downloaded browsers)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from testbed.devserver import free_port

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
         "--window-size=1440,1000"]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("chromium is required: apt-get install chromium (scripts/test.sh does)")


class Browser:
    """One Chromium process and one page, driven through CDP over a websocket."""

    def __init__(self) -> None:
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.process: subprocess.Popen[bytes] | None = None
        self.ws: Any = None
        self.ids = itertools.count(1)

    async def __aenter__(self) -> Browser:
        self.process = subprocess.Popen(
            [chromium_binary(), *FLAGS, f"--remote-debugging-port={self.port}",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        pages: list[dict[str, Any]] = []
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    pages = [p for p in (await http.get(
                        f"http://127.0.0.1:{self.port}/json")).json() if p["type"] == "page"]
                    if pages:
                        break
                await asyncio.sleep(0.2)
        if not pages:
            raise RuntimeError("chromium did not open a debuggable page")
        self.ws = await websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
        await self.call("Page.enable")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
        shutil.rmtree(self.profile, ignore_errors=True)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        await self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def text(self) -> str:
        """Visible text of the page and of every frame in it (the UI renders markdown in one)."""
        tree = (await self.call("Page.getFrameTree"))["frameTree"]
        frames, texts = [tree], []
        while frames:
            frame = frames.pop(0)
            frames.extend(frame.get("childFrames", []))
            world = await self.call("Page.createIsolatedWorld", frameId=frame["frame"]["id"])
            result = await self.call("Runtime.evaluate", contextId=world["executionContextId"],
                                     expression="document.body ? document.body.innerText : ''",
                                     returnByValue=True)
            texts.append(str(result.get("result", {}).get("value") or ""))
        return "\n".join(texts)

    async def click_text(self, text: str) -> bool:
        finder = ("[...document.querySelectorAll('button, a, [role=tab], summary')]"
                  ".find(e => e.innerText && e.innerText.trim().startsWith(t))")
        script = (f"(() => {{ const t = {json.dumps(text)}; const el = {finder}; "
                  "if (el) { el.click(); return true; } return false; })()")
        result = await self.call("Runtime.evaluate", expression=script, returnByValue=True)
        return bool(result.get("result", {}).get("value"))

    async def screenshot(self, path: Path) -> None:
        data = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))
