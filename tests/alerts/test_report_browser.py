"""The incident report in headless Chromium: no console errors, no network requests, not a blank page.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages ending in NUL on file descriptors 3 and 4), so no port is opened and no websocket
library is needed. Every request the page makes is seen by the Network domain; any URL that is
not the report's own file: or an inline data: URI fails the test.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.alerts.test_report import build


def _to_3_and_4(read_fd: int, write_fd: int) -> None:
    # read_fd may itself be 4 (or write_fd 3): copy both out of the way first
    r, w = os.dup(read_fd), os.dup(write_fd)
    os.dup2(r, 3)
    os.dup2(w, 4)


class Cdp:
    """A minimal DevTools client over the pipe, with flat sessions."""

    def __init__(self, chromium: Path, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes answers on fd 4; the fds are moved there before
        # exec, and kept open by naming 3 and 4 in pass_fds (close_fds runs after preexec_fn)
        self.proc = subprocess.Popen(
            [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=lambda: _to_3_and_4(to_chrome_r, from_chrome_w),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout_s: float = 30.0) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        want = self._id
        deadline = time.monotonic() + timeout_s
        while True:
            m = self._read(deadline)
            if m.get("id") == want:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, timeout_s: float = 30.0) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == method:
                return e
        deadline = time.monotonic() + timeout_s
        while True:
            m = self._read(deadline)
            self.events.append(m)
            if m.get("method") == method:
                return m

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout_s=5)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def test_report_opens_in_chromium_without_errors_or_network(tmp_path: Path, chromium: Path) -> None:
    from matplotlib.image import imread

    report, pngs, _ = build(tmp_path, with_compare=True)
    cdp = Cdp(chromium, tmp_path / "profile")
    try:
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.send(f"{domain}.enable", session=session)
        cdp.send("Emulation.setDeviceMetricsOverride",
                 {"width": 1200, "height": 1600, "deviceScaleFactor": 1, "mobile": False}, session=session)
        cdp.events.clear()
        cdp.send("Page.navigate", {"url": report.as_uri()}, session=session)
        cdp.wait_event("Page.loadEventFired")
        # let anything late (a lazy image, a font) show itself before judging
        cdp.send("Runtime.evaluate", {"expression": "new Promise(r => setTimeout(r, 300))", "awaitPromise": True},
                 session=session)
        title = cdp.send("Runtime.evaluate", {"expression": "document.title"}, session=session)["result"]["value"]
        images = cdp.send("Runtime.evaluate", {
            "expression": "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length"},
            session=session)["result"]["value"]
        shot = cdp.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
    finally:
        cdp.close()

    requests = [e["params"]["request"]["url"] for e in cdp.events if e.get("method") == "Network.requestWillBeSent"]
    assert requests, "the Network domain must at least see the report itself load"
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    errors = [e for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == []
    failed = [e for e in cdp.events if e.get("method") == "Network.loadingFailed"]
    assert failed == []
    assert title.startswith("Incident report")
    assert images == len(pngs) == 1

    img = imread(io.BytesIO(base64.b64decode(shot)), format="png")
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    assert img.std() > 0.05  # text, tables and a plot: far from one flat colour
    assert (img[..., :3].mean(axis=2) < 0.5).mean() > 0.005  # some dark ink on the page
