"""`python -m emulators acs` runs the ACS emulator alone and announces itself (CONTRACT §4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from azure.communication.identity import CommunicationIdentityClient

ROOT = Path(__file__).resolve().parents[2]


def test_the_acs_emulator_process_announces_a_usable_connection_string(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "emulators", "acs", "--port", "0", "--pki", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = json.loads(proc.stdout.readline())
        assert line["event"] == "server.started"
        assert line["url"] == f"https://127.0.0.1:{line['port']}" and line["port"] > 0
        assert line["ca_bundle"] == str(tmp_path / "ca.pem") and (tmp_path / "ca.pem").exists()
        assert line["connection_string"] == f"endpoint={line['url']}/;accesskey={line['access_key']}"
        client = CommunicationIdentityClient.from_connection_string(
            line["connection_string"], connection_verify=line["ca_bundle"], retry_total=0)
        assert client.create_user().raw_id.startswith("8:acs:")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "TEST ONLY" in err


def test_an_access_key_that_is_not_base64_is_refused_at_startup():
    proc = subprocess.run([sys.executable, "-m", "emulators", "acs", "--access-key", "not base64!"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert "--access-key" in proc.stderr
