"""`python -m minimal_client serve` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "MINIMAL_CLIENT_AUTHORITY": "https://127.0.0.1:9",
    "MINIMAL_CLIENT_TENANT": "t",
    "MINIMAL_CLIENT_CLIENT_ID": "c",
    "MINIMAL_CLIENT_CLIENT_SECRET": "s",
    "MINIMAL_CLIENT_BROKER_URL": "http://127.0.0.1:9",
    "MINIMAL_CLIENT_BROKER_APP_ID": "b",
}


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MINIMAL_CLIENT_")}
    return {**base, **ENV, **extra}


def test_serve_announces_the_real_port_serves_the_page_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "minimal_client", "serve", "--port", "0"],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = json.loads(proc.stdout.readline())
        assert started["event"] == "server.started" and started["port"] > 0
        with urllib.request.urlopen(f"{started['url']}/", timeout=10) as resp:
            assert resp.status == 200
            assert 'id="btn-login"' in resp.read().decode()
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_a_configuration_problem_exits_2_naming_the_key():
    env = _env(MINIMAL_CLIENT_AUTHORITY="http://not-https.example", MINIMAL_CLIENT_BOGUS="1")
    done = subprocess.run([sys.executable, "-m", "minimal_client", "serve"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "authority:" in done.stderr and "bogus: unknown key" in done.stderr
