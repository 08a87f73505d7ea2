"""The Foxglove reference client (test/foxglove_client/client.js, @foxglove/ws-protocol on node) as a
subprocess the tests drive: commands in on stdin, the server's events out on stdout (JSON lines)."""
from __future__ import annotations

import base64
import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parent / "foxglove_client"


def client_ready() -> str | None:
    """None when the client can run (npm-installing its packages if needed), else why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "node and npm are not installed: the Foxglove reference client (@foxglove/ws-protocol) cannot run"
    if not (CLIENT_DIR / "node_modules" / "@foxglove" / "ws-protocol").is_dir():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENT_DIR, capture_output=True,
                              text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"npm ci in {CLIENT_DIR} failed:\n{done.stdout}\n{done.stderr}")
    return None


class FoxgloveClient:
    """One reference client connected to ws://host:port; events collected on a thread."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.proc = subprocess.Popen(["node", str(CLIENT_DIR / "client.js"), f"ws://{host}:{port}"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if line:
                self.events.put(json.loads(line))

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, predicate, timeout: float = 20.0) -> dict:
        """The first event (seen before or arriving within ``timeout`` s) that ``predicate`` accepts."""
        for ev in self.seen:
            if predicate(ev):
                return ev
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no such event within {timeout} s; last events: {self.seen[-5:]}; "
                                   f"stderr: {self._stderr()}")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(ev)
            if predicate(ev):
                return ev

    def messages(self, topic: str) -> list[tuple[int, bytes]]:
        """(log time ns, payload) of the kept messages of ``topic`` received so far."""
        self.drain()
        return [(int(ev["logTime"]), base64.b64decode(ev["data"])) for ev in self.seen
                if ev["ev"] == "message" and ev["topic"] == topic]

    def drain(self) -> None:
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return

    def stats(self) -> dict:
        n = sum(1 for ev in self.seen if ev["ev"] == "stats")
        self.send(op="stats")
        self.wait_for(lambda ev: ev["ev"] == "stats" and sum(1 for e in self.seen if e["ev"] == "stats") > n)
        return [ev for ev in self.seen if ev["ev"] == "stats"][-1]["topics"]

    def call(self, service: str, request: dict, call_id: int, timeout: float = 10.0) -> dict:
        self.send(op="call", service=service, callId=call_id, request=request)
        ev = self.wait_for(lambda e: e["ev"] in ("serviceResponse", "serviceFailure") and e["callId"] == call_id,
                           timeout)
        if ev["ev"] == "serviceFailure":
            raise RuntimeError(f"{service} failed: {ev['message']}")
        return json.loads(ev["data"])

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read()[-2000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send(op="close")
                self.proc.wait(timeout=5)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
