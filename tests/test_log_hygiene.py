"""The session-wide log-hygiene plugin (tests/support/log_hygiene.py) fails a session whose
captured output holds a JWT-shaped string or a configured secret, and names where, not what."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from emulators.entra import demo

ROOT = Path(__file__).resolve().parents[1]


def run_session(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(body)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    plugins = ["-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest",
               "-p", "tests.support.log_hygiene"]
    return subprocess.run([sys.executable, "-m", "pytest", "-q", *plugins, "--rootdir", str(tmp_path),
                           "-c", os.devnull, str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_passing_session_that_logged_a_token_or_a_secret_fails(tmp_path):
    token, secret = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln", demo.BROKER_SECRET
    done = run_session(tmp_path, "import logging\nfrom emulators.entra import demo\n"
                                 f"def test_token():\n    print({token!r})\n"
                                 "def test_secret():\n    logging.getLogger('x').error(demo.BROKER_SECRET)\n")
    assert done.returncode == 1, done.stdout
    assert "2 passed" in done.stdout
    assert "LEAK a JWT-shaped string in test_sample.py::test_token" in done.stdout
    assert "LEAK emulators.entra.demo.BROKER_SECRET[0] in test_sample.py::test_secret" in done.stdout
    assert token not in done.stdout + done.stderr and secret not in done.stdout + done.stderr


def test_a_clean_session_passes(tmp_path):
    done = run_session(tmp_path, "def test_x():\n    print('kid=abc jti=123 token_hash=0a1b2c')\n")
    assert done.returncode == 0, done.stdout
