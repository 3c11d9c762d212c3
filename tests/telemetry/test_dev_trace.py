"""`tokenbroker dev --trace`: the demo stack prints each broker request's span tree, and the broker's
`GET /` (which the banner links) is a JSON index. A real `dev` subprocess on free ports."""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from emulators.entra import demo
from tests.support.serve_process import ROOT, WAIT


def _free_base(count: int = 4) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count >= 65536:
            continue
        try:
            for i in range(count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
    raise RuntimeError("no consecutive free ports")


@dataclass
class Dev:
    proc: subprocess.Popen
    base: int
    started: dict
    out: list[str] = field(default_factory=list)
    err: queue.Queue = field(default_factory=queue.Queue)

    def broker(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.base}{path}", headers=headers or {})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())

    def user_token(self) -> str:
        tls = ssl.create_default_context(cafile=self.started["ca_bundle"])
        body = json.dumps({"resource": demo.BROKER_CLIENT_ID, "user": demo.ALICE_UPN, "client_id": demo.CLIENT_ID,
                           "scopes": ["user_impersonation"]}).encode()
        request = urllib.request.Request(f"{self.started['entra_url']}/_emulator/token", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30, context=tls) as resp:
            return json.loads(resp.read())["access_token"]

    def tree_of(self, trace_id: str) -> list[str]:
        """The console block whose first line names `trace_id` (stderr, in order)."""
        lines: list[str] = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self.err.get(timeout=0.2).rstrip("\n")
            except queue.Empty:
                continue
            if lines and not line:          # each tree ends with a blank line
                return lines
            if lines or trace_id in line:
                lines.append(line)
        raise AssertionError(f"no span tree for {trace_id}: {lines}")


@pytest.fixture(name="dev")
def _dev(tmp_path: Path) -> Iterator[Dev]:
    base = _free_base()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKENBROKER_", "OTEL_"))}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "service", "dev", "--trace", "--port", str(base),
                             "--state-dir", str(tmp_path / "dev")], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout, proc.stderr
    err: queue.Queue = queue.Queue()
    out: list[str] = []

    def pump_stderr() -> None:
        for line in stderr:
            err.put(line)

    def pump_stdout() -> None:
        for line in stdout:
            out.append(line)

    threading.Thread(target=pump_stderr, daemon=True).start()
    started: dict = {}
    for line in stdout:
        out.append(line)
        if '"server.started"' in line:
            started = json.loads(line)
            break
    assert started, f"dev did not start: {out[-20:]}"
    threading.Thread(target=pump_stdout, daemon=True).start()
    dev = Dev(proc, base, started, out, err)
    yield dev
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=WAIT) == 0


def test_dev_trace_prints_the_span_tree_of_each_request(dev: Dev):
    trace_id = secrets.token_hex(16)
    status, body = dev.broker("/api/me", {"Authorization": f"Bearer {dev.user_token()}",
                                          "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})
    assert status == 200 and body["tid"] == dev.started["tenant_id"]
    tree = dev.tree_of(trace_id)
    assert tree[0].startswith("GET /api/me  200  ") and tree[0].endswith(f"trace {trace_id}")
    validation = next(line for line in tree if "token.validate" in line)
    assert f"tid={dev.started['tenant_id']}" in validation and "kid=" in validation
    assert any(line.lstrip("│ ").startswith(("├─ GET https://127.0.0.1:", "└─ GET https://127.0.0.1:"))
               for line in tree), tree       # the discovery / JWKS fetches from the Entra emulator
    deadline = time.monotonic() + WAIT   # stdout is read by a thread: poll for the request line
    while not any(r.get("event") == "http.request" and r.get("trace_id") == trace_id
                  for r in (json.loads(line) for line in list(dev.out) if line.startswith("{"))):
        assert time.monotonic() < deadline, "no http.request line carried the trace id"
        time.sleep(0.02)


def test_the_brokers_root_is_a_json_index_of_its_documents(dev: Dev):
    status, index = dev.broker("/")
    assert status == 200 and index["name"] == "tokenbroker" and index["version"]
    links = index["links"]
    for name in ("openapi", "readyz", "metrics", "metadata"):
        code, _ = (dev.broker(links[name]) if name != "metrics" else (200, {}))
        assert code == 200, name
    with urllib.request.urlopen(f"http://127.0.0.1:{dev.base}{links['metrics']}", timeout=30) as resp:
        assert b"tokenbroker_requests_total" in resp.read()
    assert dev.broker(links["metadata"])[1]["issuer"] == index["issuer"]
    assert "/" in dev.broker("/openapi.json")[1]["paths"]
