"""Real processes for the production-story tests: `tokenbroker serve` children and a throwaway
`redis-server`. Both are started by the test and always stopped by it (by their own pid).

`ServeProcess` reads the child's JSON log lines in a thread; `wait_for(event)` returns the next
line with that event (in order), `lines(event)` everything seen so far with it.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from pathlib import Path

import jwt

from tests.http.token_support import BROKER_AUD, PARTNER_ISS, PARTNER_SECRET
from tests.support import log_hygiene

ROOT = Path(__file__).resolve().parents[2]
TOKENBROKER = [sys.executable, "-m", "service"]
WAIT = 30.0      # a generous bound for a busy machine; never asserted as a duration


#: A broker with its own signing keys and an in-memory store, for the shutdown and worker tests;
#: format it with `grace=` (`server.shutdown_grace`, seconds).
GRACEFUL_MEMORY_TOML = """
[server]
shutdown_grace = {grace}

[issuer]
keys_dir = "keys"

[store]
url = "memory://"
"""

# The partner issuer and the `portal` client that the serve tests configure, and the exchange they make.
PARTNER_ISSUER_TOML = f"""
[[trusted_issuers]]
name = "partner"
issuer = "{PARTNER_ISS}"
secret = "{PARTNER_SECRET}"
audiences = ["{BROKER_AUD}"]
algorithms = ["HS256"]
"""
PORTAL_CLIENT_TOML = """
[[clients]]
client_id = "portal"
client_secret = "portal-secret-0123456789abcdefgh"
allowed_issuers = ["partner"]
allowed_audiences = ["dashboard"]
allowed_scopes = ["read"]
"""


def clean_env() -> dict[str, str]:
    """The test's environment without TOKENBROKER_* overrides (the config file says everything)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TOKENBROKER_")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connection_refused(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port any more."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


class ServeProcess:
    """`tokenbroker serve --config FILE [args]` in its own session; stdout+stderr are JSON lines."""

    def __init__(self, config: Path, *args: str, started: bool = True) -> None:
        self.proc = subprocess.Popen([*TOKENBROKER, "serve", "--config", str(config), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=ROOT, env=clean_env(), start_new_session=True)
        self._queue: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        self.raw: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = ""
        if started:
            self.wait_started()

    def wait_started(self) -> ServeProcess:
        """Wait for `server.started` and take the real URL from it."""
        line = self.wait_for("server.started")
        self.url = f"http://127.0.0.1:{line['port']}"
        return self

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            log_hygiene.observe(line)
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = {"event": "raw", "line": line.rstrip()}
            self._queue.put(record if isinstance(record, dict) else {"event": "raw", "line": line})
        self._queue.put({"event": "eof"})

    def wait_for(self, event: str) -> dict:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                record = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(record)
            if record.get("event") == event:
                return record
            if record.get("event") == "eof":
                break
        raise AssertionError(f"no {event}; saw {[r.get('event') for r in self.seen][-30:]}")

    def drain(self) -> list[dict]:
        """Everything logged so far (after the process ended: everything it logged)."""
        while True:
            try:
                record = self._queue.get(timeout=0.5 if self.proc.poll() is not None else 0)
            except queue.Empty:
                return self.seen
            self.seen.append(record)
            if record.get("event") == "eof":
                return self.seen

    def lines(self, event: str) -> list[dict]:
        return [r for r in self.drain() if r.get("event") == event]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def get(self, path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        return self.proc.wait(timeout=WAIT)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its own process group (workers included) if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)    # our own session: only our children
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def wait_until_serving(server, what: str) -> None:
    """Poll `server._answers()` until true; stop it and fail if its process ends or WAIT passes."""
    deadline = time.monotonic() + WAIT
    while not server._answers():
        if server.proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"{what} did not start")
        time.sleep(0.05)


def delete_prefix(url: str, prefix: str) -> None:
    """Delete this test's own keys (never FLUSHDB: the Redis is shared)."""
    import redis
    client = redis.Redis.from_url(url)
    try:
        names = list(client.scan_iter(match=prefix + "*", count=500))
        if names:
            client.delete(*names)
    finally:
        client.close()


class RedisServer:
    """A throwaway `redis-server` on a free port, no persistence; `stop()` kills it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_serving(self, f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT)


def post(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """POST to a served broker; (status, JSON body) for 2xx and error statuses alike."""
    req = urllib.request.Request(url, data=data if data is not None else b"", headers=headers or {},
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def partner_exchange(url: str) -> str:
    """A token from the broker at `url` for a partner subject (token exchange as `portal`)."""
    now = int(time.time())
    subject = jwt.encode({"iss": PARTNER_ISS, "sub": "user-1", "aud": BROKER_AUD, "scope": "read",
                          "iat": now, "exp": now + 600}, PARTNER_SECRET, algorithm="HS256")
    form = urllib.parse.urlencode({
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": subject,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "audience": "dashboard"}).encode()
    auth = b64encode(b"portal:portal-secret-0123456789abcdefgh").decode()
    status, body = post(f"{url}/oauth2/token", form, {"Authorization": f"Basic {auth}"})
    assert status == 200, body
    return body["access_token"]
