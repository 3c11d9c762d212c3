"""The real `tokenbroker` command: serve, check-config, exit codes, the started line, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKENBROKER = [sys.executable, "-m", "service"]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENBROKER_")}
    env.update(extra)
    return env


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*TOKENBROKER, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env or _env(), timeout=timeout)


class Server:
    """`tokenbroker serve` as a child process; reads its JSON log lines."""

    def __init__(self, config: Path, env: dict | None = None, extra: tuple[str, ...] = ()):
        self.proc = subprocess.Popen([*TOKENBROKER, "serve", "--config", str(config), "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                     env=env or _env())
        self.lines: list[dict] = []
        self.started = self.wait_for("server.started")
        self.url = f"http://127.0.0.1:{self.started['port']}"

    def wait_for(self, event: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"serve exited before {event}: {self.proc.stderr.read()}")
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.lines.append(record)
            if record.get("event") == event:
                return record
        raise AssertionError(f"no {event} within {timeout}s")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture(name="config")
def _config(tmp_path: Path) -> Path:
    path = tmp_path / "broker.toml"
    example = (ROOT / "deploy" / "config.example.toml").read_text()
    path.write_text(example)
    return path


@pytest.fixture(name="local_config")
def _local_config(tmp_path: Path) -> Path:
    """No [entra]: nothing outside this machine is needed to be ready."""
    path = tmp_path / "local.toml"
    path.write_text('[issuer]\nkeys_dir = "keys"\n[store]\nurl = "sqlite:///state.db"\n')
    return path


def test_check_config_accepts_the_example_config(config):
    result = run("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_check_config_names_every_bad_key_and_exits_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "eighty"\nbogus = 1\n[store]\nurl = "ftp://x"\n')
    result = run("check-config", "--config", str(bad))
    assert result.returncode == 2
    assert "server.port" in result.stderr
    assert "server.bogus" in result.stderr


def test_an_unknown_environment_variable_is_refused(config):
    result = run("check-config", "--config", str(config), env=_env(TOKENBROKER_SERVER__PROTT="1"))
    assert result.returncode == 2
    assert "TOKENBROKER_SERVER__PROTT" in result.stderr


def test_serve_refuses_a_bad_config_with_exit_2_before_binding(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[entra]\nclient_id = 5\n")
    proc = subprocess.run([*TOKENBROKER, "serve", "--config", str(bad), "--port", "0"], capture_output=True,
                          text=True, cwd=ROOT, env=_env(), timeout=60)
    assert proc.returncode == 2
    assert "entra." in proc.stderr
    assert "server.started" not in proc.stdout


def test_readiness_names_the_unreachable_entra_keys(config):
    """The example config points at login.microsoftonline.com, unreachable offline."""
    server = Server(config)
    try:
        status, body = server.get("/readyz")
    finally:
        server.stop()
    assert status == 503
    assert json.loads(body)["failing"] == ["jwks"]


def test_serve_starts_answers_and_stops_cleanly_on_sigterm(local_config):
    server = Server(local_config)
    try:
        assert server.started["host"] == "127.0.0.1" and server.started["port"] > 0
        status, body = server.get("/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        status, body = server.get("/readyz")
        assert status == 200, body
        status, body = server.get("/metrics")
        assert status == 200 and b"tokenbroker_requests_total" in body
        status, body = server.get("/openapi.json")
        assert status == 200 and "/healthz" in json.loads(body)["paths"]
        status, body = server.get("/.well-known/oauth-authorization-server")
        assert json.loads(body)["issuer"] == server.url  # the real port, not ":0"
    finally:
        code = server.stop()
    assert code == 0
    events = [line.get("event") for line in server.lines]
    rest = server.proc.stdout.read() if server.proc.stdout else ""
    events += [json.loads(x).get("event") for x in rest.splitlines() if x.startswith("{")]
    assert "server.stopped" in events
    assert (local_config.parent / "state.db").exists()
    assert list((local_config.parent / "keys").glob("*.json"))


def test_every_log_line_is_json_and_carries_no_secret(config, tmp_path):
    env = _env(TOKENBROKER_CLIENTS__PORTAL__CLIENT_SECRET="s3cr3t-value-never-logged-0123456789")
    server = Server(config, env=env)
    try:
        server.get("/healthz")
    finally:
        server.stop()
    out = (server.proc.stdout.read() if server.proc.stdout else "")
    assert "s3cr3t-value-never-logged-0123456789" not in out
    for line in out.splitlines():
        json.loads(line)


@pytest.mark.parametrize("which", ["entra", "acs"])
def test_emulate_prints_its_started_line_and_serves_https(which, tmp_path):
    proc = subprocess.Popen([*TOKENBROKER, "emulate", which, "--port", "0", "--pki", str(tmp_path / "pki")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env())
    try:
        line = json.loads(proc.stdout.readline())
        assert line["event"] == "server.started" and line["port"] > 0
        assert line["ca_bundle"] == str(tmp_path / "pki" / "ca.pem")
        if which == "entra":
            assert line["tenant_id"]
            path = f"/{line['tenant_id']}/v2.0/.well-known/openid-configuration"
        else:
            path = "/_emulator/requests"
        ctx = ssl.create_default_context(cafile=line["ca_bundle"])
        with urllib.request.urlopen(line["url"] + path, context=ctx, timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_python_dash_m_service_is_the_same_command():
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "check-config", "dev", "emulate", "keys"):
        assert command in result.stdout
