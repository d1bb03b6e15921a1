"""Open a page in a real headless Chromium and report what a user would see (tests only).

Speaks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out, messages
separated by NUL bytes), so no driver package and no network port are needed: only the browser
(Debian's ``chromium``). ``inspect_page`` returns the console errors, uncaught exceptions, failed
loads, every ``<img>`` with whether it decoded, and a full-page screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Flags for a closed network, as root, without a display (see the machine notes: background networking off,
# or Chromium tries to reach Google's hosts at every start).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio")


def find_chromium() -> str | None:
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@dataclass
class PageReport:
    console: list[dict[str, Any]] = field(default_factory=list)  # every console message: {level, text}
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)  # browser log entries of level error (failed loads ...)
    images: list[dict[str, Any]] = field(default_factory=list)  # {src, loaded, width}
    title: str = ""
    text: str = ""

    @property
    def errors(self) -> list[str]:
        return ([f"console.{m['level']}: {m['text']}" for m in self.console if m["level"] in ("error", "assert")]
                + self.exceptions + self.log_errors)


def _above_4(fd: int) -> int:
    import fcntl

    if fd > 4:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class _Pipe:
    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child's ends move to fds 3 and 4 by redirection in bash (dash refuses fd numbers above 9); if a
        # pipe end IS fd 3 or 4 already (pytest's capture frees low numbers), the first redirection would
        # clobber the other, so move them up first.
        to_browser_r, from_browser_w = (_above_4(fd) for fd in (to_browser_r, from_browser_w))
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self.proc = subprocess.Popen(["/bin/bash", "-c", script, binary, *FLAGS, f"--user-data-dir={profile}",
                                      "--remote-debugging-pipe", "about:blank"],
                                     pass_fds=(to_browser_r, from_browser_w), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *complete, buffer = buffer.split(b"\0")
            for raw in complete:
                self._messages.put(json.loads(raw))
        self._messages.put(None)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 60) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise RuntimeError(f"Chromium is not running: {self.proc.stderr.read().decode(errors='replace')[-2000:]}") from None
        deadline = time.monotonic() + timeout
        while True:
            reply = self._messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if reply is None:
                raise RuntimeError(f"Chromium exited during {method}: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 60) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if event is None:
                raise RuntimeError(f"Chromium exited while waiting for {method}")
            self.events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except Exception:  # already gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)


_IMAGES = "JSON.stringify(Array.from(document.images).map(i => ({src: i.getAttribute('src'), loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth})))"


def inspect_page(html: Path, screenshot: Path | None = None, binary: str | None = None, width: int = 1280) -> PageReport:
    """Load ``html`` (a file) in headless Chromium; collect what went wrong; optionally save a full-page PNG."""
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found (install Debian's chromium package or set CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        pipe = _Pipe(binary, Path(profile))
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False}, session=session)
            pipe.call("Page.navigate", {"url": Path(html).absolute().as_uri()}, session=session)
            pipe.wait_for("Page.loadEventFired", session)

            def evaluate(expression: str) -> Any:
                return pipe.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)["result"]["value"]

            report = PageReport(images=json.loads(evaluate(_IMAGES)), title=evaluate("document.title"),
                                text=evaluate("document.body.innerText"))
            if screenshot is not None:
                height = int(evaluate("document.documentElement.scrollHeight"))
                pipe.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
                shot = pipe.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            for event in pipe.events:
                if event.get("sessionId") != session:
                    continue
                params = event.get("params", {})
                if event.get("method") == "Runtime.consoleAPICalled":
                    text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                    report.console.append({"level": params.get("type"), "text": text})
                elif event.get("method") == "Runtime.exceptionThrown":
                    details = params.get("exceptionDetails", {})
                    report.exceptions.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
                elif event.get("method") == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                    entry = params["entry"]
                    report.log_errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
            return report
        finally:
            pipe.close()
