"""Open a page in headless Chromium over the DevTools pipe and report what a reader would meet:
console errors, uncaught exceptions, every network request, and the result of a script run on
the loaded page. Debian's ``chromium`` (``apt-get install chromium``); None when absent."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Pipe:
    """DevTools protocol over --remote-debugging-pipe: JSON messages separated by NUL bytes,
    commands written to the browser's fd 3, answers and events read from its fd 4."""

    def __init__(self, write_fd: int, read_fd: int):
        self.w, self.r = os.fdopen(write_fd, "wb", buffering=0), os.fdopen(read_fd, "rb", buffering=0)
        self.next_id, self.buffer, self.events = 0, b"", []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self.buffer:
            if not select.select([self.r], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.r.fileno(), 1 << 16)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.w.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        for i, m in enumerate(self.events):
            if m.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("method") == method:
                return m
            self.events.append(m)


def open_page(path: Path, script: str, *, timeout: float = 90) -> dict[str, Any]:
    """Load ``path`` (a file) and evaluate ``script`` (an expression returning JSON-able data).

    Returns {"result": ..., "console_errors": [...], "requests": [urls other than the page and
    data: URIs], "exceptions": [...]}."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found")
    url = Path(path).resolve().as_uri()
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="genbench-chromium-")
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio",
            "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]

    def child_fds():  # the browser reads commands on fd 3 and writes answers on fd 4
        import fcntl

        # copies above 10 first, so placing one pipe end on 3 or 4 cannot overwrite the other
        r, w = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.dup2(r, 3)
        os.dup2(w, 4)
        os.set_inheritable(3, True)
        os.set_inheritable(4, True)

    # close_fds=False: closing would also close the fds 3 and 4 that child_fds just made
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=child_fds, close_fds=False)
    os.close(to_browser_r)
    os.close(from_browser_w)
    pipe = _Pipe(to_browser_w, from_browser_r)
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
        session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.call(f"{domain}.enable", session=session)
        pipe.events.clear()
        pipe.call("Page.navigate", {"url": url}, session=session)
        pipe.wait_for("Page.loadEventFired", timeout=timeout)
        answer = pipe.call("Runtime.evaluate", {"expression": f"JSON.stringify({script})", "returnByValue": True},
                           session=session)
        time.sleep(0.2)
        pipe.call("Runtime.evaluate", {"expression": "1"}, session=session)  # flush late events
        events = [m for m in pipe.events if m.get("sessionId") == session]
        errors = [m["params"]["entry"]["text"] for m in events
                  if m.get("method") == "Log.entryAdded" and m["params"]["entry"]["level"] == "error"]
        errors += [" ".join(str(a.get("value", a.get("description", ""))) for a in m["params"]["args"])
                   for m in events if m.get("method") == "Runtime.consoleAPICalled"
                   and m["params"]["type"] in ("error", "assert")]
        exceptions = [m["params"]["exceptionDetails"].get("text") for m in events
                      if m.get("method") == "Runtime.exceptionThrown"]
        requests = [m["params"]["request"]["url"] for m in events if m.get("method") == "Network.requestWillBeSent"]
        requests = [u for u in requests if u != url and not u.startswith("data:")]
        return {"result": json.loads(answer["result"]["value"]), "console_errors": errors, "requests": requests,
                "exceptions": exceptions}
    finally:
        try:
            pipe.call("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)

