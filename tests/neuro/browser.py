"""Open a page in headless Chromium and ask it questions through the DevTools protocol (a tiny websocket client).

Chromium is a system package (Debian: ``apt-get install -y chromium``; ``.ci/run`` installs it). A
missing browser fails the test with that line: a report nobody opened in a browser is not tested.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--window-size=1280,1600"]


def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("headless Chromium is not installed: apt-get install -y chromium (.ci/run does it before make test)")
    return path


class WebSocket:
    """Just enough of RFC 6455 for DevTools: text frames out (masked), text frames in, pings answered."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.stream = self.sock.makefile("rb")
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        status = self.stream.readline().decode()
        if " 101 " not in status:
            raise ConnectionError(f"DevTools refused the websocket: {status.strip()}")
        while self.stream.readline() not in (b"\r\n", b""):
            pass

    def _frame(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + mask + masked)

    def send(self, text: str) -> None:
        self._frame(0x1, text.encode())

    def recv(self) -> str:
        message = b""
        while True:
            first, second = self.stream.read(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.stream.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.stream.read(8))[0]
            payload = self.stream.read(n)
            opcode = first & 0x0F
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the websocket")
            message += payload
            if first & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


class Page:
    """A Chromium tab: ``call`` a DevTools method; every event seen meanwhile is kept in ``events``."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {timeout} s")
            self.events.append(json.loads(self.ws.recv()))

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and error-level log entries (failed loads), as text."""
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(params["entry"].get("text", ""))
        return found

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=min(max(height, 600), 8000),
                  deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


class Browser:
    """``with Browser() as open_page: page = open_page(file)``: headless Chromium, a fresh profile, closed after."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        # stderr to a file, not a pipe: Chromium keeps logging, and a full pipe would stall it.
        self.log = Path(self.profile) / "stderr.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                            stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + self.timeout
        port = None
        while port is None:
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", self.log.read_text(errors="replace"))
            port = int(match.group(1)) if match else None
            if port is None and self.process.poll() is not None:
                raise RuntimeError(f"Chromium exited with code {self.process.returncode} before DevTools listened: "
                                   f"{self.log.read_text(errors='replace')[-500:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium's DevTools did not start")
            time.sleep(0.1)
        self.port = port
        self.sockets: list[WebSocket] = []
        return self.open

    def open(self, path: Path) -> Page:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=self.timeout) as reply:
            target = next(t for t in json.load(reply) if t["type"] == "page")
        ws = WebSocket(target["webSocketDebuggerUrl"], self.timeout)
        self.sockets.append(ws)
        page = Page(ws)
        for domain in ("Runtime", "Log", "Page"):
            page.call(f"{domain}.enable")
        page.events.clear()  # enabling replays the previous page's console messages
        page.call("Page.navigate", url=Path(path).resolve().as_uri())
        page.wait_for("Page.loadEventFired", self.timeout)
        return page

    def __exit__(self, *exc) -> None:
        for ws in self.sockets:
            ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
