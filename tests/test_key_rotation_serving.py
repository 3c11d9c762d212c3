"""Key rotation while serving, end to end: real `tokenbroker serve` processes and the real
`tokenbroker keys rotate` command on one keys_dir. The next key is published without a restart
(SIGHUP, or the periodic reload), signs after `key_activation_delay`, tokens from before and
after verify against the served JWKS, and replicas on one keys_dir serve the same JWKS."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import jwt
import pytest

from tests.support.serve_process import (
    PARTNER_ISSUER_TOML,
    PORTAL_CLIENT_TOML,
    ROOT,
    TOKENBROKER,
    WAIT,
    ServeProcess,
    clean_env,
    partner_exchange,
)

PUBLIC_URL = "http://broker.test"
CONFIG = f"""
[server]
public_url = "{PUBLIC_URL}"

[issuer]
keys_dir = "keys"
key_activation_delay = 1
key_reload_interval = 1
access_token_ttl = 300

[store]
url = "memory://"

""" + PARTNER_ISSUER_TOML + PORTAL_CLIENT_TOML


class Serve(ServeProcess):
    """One `tokenbroker serve --port 0` child (tests/support/serve_process.py) with the JWKS and
    token calls these tests make."""

    def __init__(self, config: Path) -> None:
        super().__init__(config, "--port", "0")

    def events_named(self, event: str) -> int:
        """How many lines so far carried this event (reads what the thread has queued)."""
        return len(self.lines(event))

    def jwks(self) -> dict:
        status, body = self.get("/oauth2/jwks")
        assert status == 200, body
        return body

    def kids(self) -> set[str]:
        return {k["kid"] for k in self.jwks()["keys"]}

    def token(self) -> str:
        return partner_exchange(self.url)

    def hup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)
        self.wait_for("server.reloaded")     # the reload hooks ran before this line was logged


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def verify(token: str, jwks: dict) -> dict:
    """As a resource server: PyJWT against the served JWK Set."""
    key = jwt.PyJWKSet.from_dict(jwks)[kid_of(token)].key
    return jwt.decode(token, key, algorithms=["ES256"], audience="dashboard", issuer=PUBLIC_URL)


def rotate(config: Path) -> str:
    result = subprocess.run([*TOKENBROKER, "keys", "rotate", "--config", str(config)], capture_output=True,
                            text=True, cwd=ROOT, env=clean_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def signed_by(server: Serve, kid: str) -> str | None:
    token = server.token()
    return token if kid_of(token) == kid else None


def eventually(probe, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


@pytest.fixture(name="config")
def _config(tmp_path: Path) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(CONFIG)
    return path


def test_sighup_publishes_the_rotated_key_at_once_and_it_signs_after_activation(config, servers):
    servers.append(server := Serve(config))
    before = server.token()
    old_kid = kid_of(before)
    assert server.kids() == {old_kid}
    new_kid = rotate(config)
    assert new_kid != old_kid
    server.hup()
    assert server.kids() == {old_kid, new_kid}      # pre-published, the old key still listed
    after = eventually(lambda: signed_by(server, new_kid), "a token signed by the rotated-in key")
    jwks = server.jwks()
    assert verify(before, jwks)["sub"] == verify(after, jwks)["sub"]
    assert server.proc.poll() is None
    assert server.events_named("server.started") == 1                       # never restarted
    assert server.events_named("keyring.reloaded") >= 1


def test_without_a_signal_the_periodic_reload_picks_the_rotation_up(config, servers):
    servers.append(server := Serve(config))
    before = server.token()
    new_kid = rotate(config)
    eventually(lambda: new_kid in server.kids(), "the rotated-in key in the served JWKS")
    after = eventually(lambda: signed_by(server, new_kid), "a token signed by the rotated-in key")
    jwks = server.jwks()
    assert verify(before, jwks)["client_id"] == verify(after, jwks)["client_id"] == "portal"
    assert kid_of(before) in {k["kid"] for k in jwks["keys"]}
    assert server.proc.poll() is None


def test_replicas_on_one_keys_dir_serve_the_same_jwks_before_and_after_a_rotation(config, servers):
    servers.append(first := Serve(config))
    servers.append(second := Serve(config))
    assert first.jwks() == second.jwks()
    new_kid = rotate(config)
    first.hup()
    second.hup()
    assert first.jwks() == second.jwks()
    assert new_kid in first.kids()
    token = eventually(lambda: signed_by(first, new_kid), "the first replica signing with the new key")
    assert verify(token, second.jwks())["aud"] == "dashboard"      # one replica's token, the other's JWKS


@pytest.mark.parametrize(("content", "message"), [
    (None, "not found"),
    ("[issuer]\nbogus = 1\n", "issuer.bogus"),
    ('[issuer]\nsigning_alg = "HS256"\n', "issuer.signing_alg"),
])
def test_keys_rotate_with_a_bad_config_exits_2_and_names_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.toml"
    if content is not None:
        path.write_text(content)
    result = subprocess.run([*TOKENBROKER, "keys", "rotate", "--config", str(path)], capture_output=True,
                            text=True, cwd=ROOT, env=clean_env(), timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "keys").exists()
