"""The one-command demo (`python -m service dev`) as a subprocess, and Debian's headless Chromium.

One dev stack per module: it is started with a fresh state folder on four consecutive free
ports, awaited until it logs `server.started`, and stopped with SIGTERM (which must end it
cleanly, exit code 0). The browser is Debian's `chromium` driven by Playwright's sync API;
no browser is ever downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass(frozen=True)
class DevStack:
    port: int
    client_url: str
    entra_url: str
    acs_url: str
    ca_bundle: str
    tenant_id: str
    output: list[str]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(count: int = 4) -> int:
    """A port P such that P..P+count-1 are all free on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + count < 65536 and all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found on 127.0.0.1")


def _pump(stream, lines: list[str], started: threading.Event, found: list[dict]) -> None:
    """Collect the child's output; flag the first `server.started` JSON line."""
    for line in iter(stream.readline, ""):
        lines.append(line.rstrip("\n"))
        if not started.is_set() and '"server.started"' in line:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "server.started":
                found.append(record)
                started.set()
    stream.close()


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory) -> Iterator[DevStack]:
    """`python -m service dev` on free ports with a fresh state folder; SIGTERM at the end."""
    state_dir = tmp_path_factory.mktemp("devstate")
    # The README's screenshot shows the footer's URLs: take `make run`'s ports when free.
    want_default = os.environ.get("UPDATE_SCREENSHOT") == "1" and all(_port_free(8400 + i) for i in range(4))
    base = 8400 if want_default else free_base_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENBROKER_")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "dev", "--port", str(base), "--state-dir", str(state_dir)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []
    found: list[dict] = []
    started = threading.Event()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines, started, found), daemon=True)
    reader.start()
    try:
        if not started.wait(START_TIMEOUT):
            raise AssertionError(f"`tokenbroker dev` did not log server.started within {START_TIMEOUT:.0f}s "
                                 f"(exit code {proc.poll()}):\n" + "\n".join(lines[-40:]))
        record = found[0]
        assert record["port"] == base
        yield DevStack(port=base, client_url=record["client_url"].rstrip("/"), entra_url=record["entra_url"],
                       acs_url=record["acs_url"], ca_bundle=record["ca_bundle"], tenant_id=record["tenant_id"],
                       output=lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        reader.join(5)
    tail = "\n".join(lines[-40:])
    assert code == 0, f"`tokenbroker dev` did not stop cleanly on SIGTERM (exit code {code}):\n{tail}"
    assert any('"server.stopped"' in line for line in lines), f"no server.stopped log line:\n{tail}"
    assert not any("Traceback" in line for line in lines), f"a traceback in the dev stack's output:\n{tail}"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium via Playwright (never a downloaded browser)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's `chromium` is not installed: the browser tests need it — run `make system-deps` "
                    "(as root; it apt-installs chromium). Playwright's own browser download is not used.",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, dev_stack):
    """A fresh browser context (no cookies) and page. The emulators serve HTTPS with the dev
    stack's own CA, which this throwaway profile does not trust, hence ignore_https_errors."""
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
