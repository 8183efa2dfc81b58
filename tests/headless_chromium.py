"""One headless Chromium driven over the DevTools protocol, with the standard library only.

``--remote-debugging-pipe`` makes Chromium read protocol commands from its fd 3
and write replies and events to its fd 4, each message one JSON object ended by
a NUL byte: no port, no WebSocket client, no server for the pages.  One browser
serves every check of a session; a page waits for what it must show (no fixed
sleeps, no virtual-time budget), and every request off this machine is refused,
so an offline CI never waits on the report's analytics tag.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

# The report embeds an analytics tag: no host is resolved, and no request to one is made.
BLOCKED_URLS = ["http://*", "https://*", "ws://*", "wss://*"]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--remote-debugging-pipe",
]


def _above_4(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class BrowserError(RuntimeError):
    """Chromium went away, or answered a command with an error."""


class Chromium:
    """A headless Chromium whose pages are driven over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str = "chromium", startup_timeout: float = 120.0) -> None:
        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # Above fd 4, so that putting one end on fd 3 or 4 cannot overwrite the other.
        to_child_r, from_child_w = _above_4(to_child_r), _above_4(from_child_w)
        # The child's fds 3 and 4 are the pipe ends; bash puts them there (dash takes no fd > 9).
        cmd = [shutil.which(binary) or binary, *FLAGS, f"--user-data-dir={self._profile}",
               "about:blank"]
        script = f'exec "$@" 3<&{to_child_r} 4>&{from_child_w} {to_child_r}<&- {from_child_w}>&-'
        self.proc = subprocess.Popen(
            ["bash", "-c", script, "bash", *cmd],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_child_r, from_child_w),
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._next_id = 0
        self._buffer = b""
        self.call("Browser.getVersion", timeout=startup_timeout)

    # -- the protocol ------------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from Chromium in time")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium closed its pipe (status {self.proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: Optional[dict] = None, session: Optional[str] = None,
             timeout: float = 60.0) -> dict:
        """Send one command and return its result (events, unused here, are dropped)."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._to_child, data):]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def new_page(self, width: int = 1400, height: int = 1100) -> Page:
        """A tab in a context of its own: no storage shared with earlier pages.

        (Allure 3 keeps its view state in localStorage, which every ``file:`` page
        shares; one report's state has left the next report's front page empty.)
        """
        context = self.call("Target.createBrowserContext")["browserContextId"]
        target = self.call("Target.createTarget",
                           {"url": "about:blank", "browserContextId": context})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        return Page(self, context, target, session["sessionId"], width, height)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close", timeout=10)
                except (BrowserError, TimeoutError, OSError):
                    pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        finally:
            for fd in (self._to_child, self._from_child):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    """One tab, sized like a ``--window-size`` window."""

    def __init__(self, browser: Chromium, context: str, target: str, session: str, width: int,
                 height: int) -> None:
        self.browser, self.context, self.target, self.session = browser, context, target, session
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Network.setBlockedURLs", {"urls": BLOCKED_URLS})
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def call(self, method: str, params: Optional[dict] = None, timeout: float = 60.0) -> dict:
        return self.browser.call(method, params, session=self.session, timeout=timeout)

    def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        """The value of a JavaScript expression (a promise is awaited); None while navigating."""
        try:
            result = self.call("Runtime.evaluate", {"expression": expression,
                                                    "returnByValue": True,
                                                    "awaitPromise": True}, timeout=timeout)
        except BrowserError as exc:
            if "context" in str(exc).lower():  # the document changed under the evaluation
                return None
            raise
        if "exceptionDetails" in result:
            return None
        return result.get("result", {}).get("value")

    def load(self, url: str) -> None:
        """Open ``url`` as a fresh document (a fragment change alone is loaded anew too)."""
        self.call("Page.navigate", {"url": "about:blank"})
        self.call("Page.navigate", {"url": url})

    def reload(self) -> None:
        self.call("Page.reload", {"ignoreCache": True})

    def text(self) -> str:
        """What a user reads on the page (the body's rendered text)."""
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, done: Callable[[str], bool], timeout: float,
                      settle: Optional[float] = None, ready: str = "true") -> str:
        """The page's text once ``done(text)``, or its last text.

        The last text is taken after ``timeout`` seconds, or, with ``settle``, once
        the page has been loaded (and the JavaScript ``ready`` true) for ``settle``
        seconds without ``done``.
        """
        deadline = time.monotonic() + timeout
        ready_since: Optional[float] = None
        while True:
            text = self.text()
            now = time.monotonic()
            if done(text) or now >= deadline:
                return text
            if settle is not None:
                if ready_since is None:
                    if self.evaluate(f"document.readyState === 'complete' && !!({ready})"):
                        ready_since = now
                elif now - ready_since >= settle:
                    return text
            time.sleep(0.05)

    def screenshot(self, out: Path) -> Path:
        # Fonts loaded and two frames drawn since the text showed: what a user would see.
        self.evaluate("document.fonts.ready.then(() => new Promise(r => requestAnimationFrame("
                      "() => requestAnimationFrame(() => r(true)))))")
        shot = self.call("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True})
        data = shot["data"]
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        self.browser.call("Target.closeTarget", {"targetId": self.target})
        self.browser.call("Target.disposeBrowserContext", {"browserContextId": self.context})

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Allure 3's single-file report has its data in place once this is true.
REPORT_READY = "window.allureReportDataReady"


def showing(page: Page, url: str, wanted: Sequence[str], fresh: bool = True, loads: int = 3,
            timeout: float = 120.0, settle: float = 10.0, any_of: Sequence[str] = ()) -> str:
    """``url``'s text once it shows every wanted string, or its last text after ``loads`` loads.

    ``any_of``: also at least one of these (a page that may show either).

    ``fresh``: ``url`` is loaded as a new document, as when a user opens the link;
    otherwise only the page's fragment changes (the report's own navigation, as a
    click on one of its tabs).  The report renders its data asynchronously, and on
    a loaded machine a load can end in the report's own "Failed to fetch" state,
    or, seen with Allure 3.18, never render the front page's content; a reload
    clears both.  So a load whose data has been in place for ``settle`` seconds
    without showing the strings is reloaded, but the last load is given the full
    ``timeout``.  A report that is really missing a string misses it on every
    load.
    """
    if fresh:
        page.load(url)
    else:
        page.call("Page.navigate", {"url": url})
    def shows(t: str) -> bool:
        return all(w in t for w in wanted) and (not any_of or any(a in t for a in any_of))

    text = ""
    for attempt in range(loads):
        if attempt:
            page.reload()
        last = attempt == loads - 1
        text = page.wait_for_text(lambda t: shows(t) or "Failed to fetch" in t, timeout,
                                  settle=None if last else settle, ready=REPORT_READY)
        if shows(text):
            break
    return text
