"""`tokenbroker serve` as a process: SIGTERM drains in-flight requests and refuses new
connections, `--workers 2` shares one port, and `--port 0` makes the real port our issuer.

Each test starts real `tokenbroker serve` children (tests/support/serve_process.py); the OBO
test points one at the Entra emulator (in-process, HTTPS, session CA in `[tls] ca_bundle`).
"""

from __future__ import annotations

import http.client
import time
from concurrent.futures import Future, ThreadPoolExecutor

import jwt
import pytest

from tests.obo.conftest import JWT_BEARER, broker_toml, portal_token
from tests.support.serve_process import (
    PARTNER_ISSUER_TOML,
    PORTAL_CLIENT_TOML,
    WAIT,
    ServeProcess,
    connection_refused,
    partner_exchange,
    post,
)

PLAIN = """
[issuer]
keys_dir = "keys"

[store]
url = "memory://"

""" + PARTNER_ISSUER_TOML + PORTAL_CLIENT_TOML


def start_obo_broker(entra, tmp_path, servers, server_keys: str = "") -> ServeProcess:
    config = tmp_path / "broker.toml"
    config.write_text(broker_toml(entra, tmp_path).replace("[server]\n", f"[server]\n{server_keys}"))
    servers.append(server := ServeProcess(config, "--port", "0"))
    return server


def sigterm_while_entra_holds_an_obo_call(entra, server: ServeProcess, pool: ThreadPoolExecutor) -> Future:
    """Start an OBO call that Entra holds for 2.5 s, SIGTERM once it is held, return its future."""
    token = portal_token(entra)
    entra.inject_fault(grant_type=JWT_BEARER, delay=2.5)
    in_flight = pool.submit(post, f"{server.url}/api/token/obo/workspace",
                            headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + WAIT
    while not entra.requests(grant_type=JWT_BEARER):                           # now held by Entra
        assert time.monotonic() < deadline and not in_flight.done(), "the OBO call never reached Entra"
        time.sleep(0.02)
    server.terminate()
    server.wait_for("server.stopping")
    return in_flight


def test_sigterm_lets_an_in_flight_obo_call_finish_and_refuses_new_connections(entra, tmp_path, servers):
    server = start_obo_broker(entra, tmp_path, servers)
    status, meta = server.get("/.well-known/oauth-authorization-server")
    assert status == 200 and meta["issuer"] == "http://127.0.0.1:8400"      # an explicit public_url stays
    with ThreadPoolExecutor(1) as pool:
        in_flight = sigterm_while_entra_holds_an_obo_call(entra, server, pool)
        deadline = time.monotonic() + WAIT
        while not connection_refused(server.port):                              # the listener closes first
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.01)
        assert not in_flight.done() and server.proc.poll() is None                # ... while draining
        status, body = in_flight.result(timeout=WAIT)
    assert status == 200, body
    assert body["access_token"] and body["token_type"].lower() == "bearer"
    assert server.wait() == 0
    events = [r.get("event") for r in server.drain()]
    served = [r for r in server.seen if r.get("event") == "http.request" and r.get("status") == 200
              and r.get("route", "").startswith("/api/token/obo")]
    assert len(served) == 1
    stopping, stopped = events.index("server.stopping"), events.index("server.stopped")
    assert stopping < server.seen.index(served[0]) < stopped                    # finished during the drain
    assert not any("Traceback" in line for line in server.raw)


def test_a_shutdown_grace_of_0_does_not_wait_for_in_flight_requests(entra, tmp_path, servers):
    server = start_obo_broker(entra, tmp_path, servers, "shutdown_grace = 0\n")
    with ThreadPoolExecutor(1) as pool:
        in_flight = sigterm_while_entra_holds_an_obo_call(entra, server, pool)
        assert server.wait() == 0
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            in_flight.result(timeout=WAIT)                  # cut, not answered after Entra's delay
    assert server.lines("server.stopped")
    assert not any("Traceback" in line for line in server.raw)


def test_two_workers_share_one_port_and_both_stop_on_sigterm(tmp_path, servers):
    config = tmp_path / "broker.toml"
    config.write_text(PLAIN)
    servers.append(parent := ServeProcess(config, "--port", "0", "--workers", "2", started=False))
    first, second = parent.wait_for("server.started"), parent.wait_for("server.started")
    assert first["port"] == second["port"] != 0
    assert first["pid"] != second["pid"] and parent.proc.pid not in (first["pid"], second["pid"])
    parent.url = f"http://127.0.0.1:{first['port']}"
    for _ in range(8):                         # fresh connections, spread over both by the kernel
        assert parent.get("/healthz") == (200, {"status": "ok"})
    status, meta = parent.get("/.well-known/oauth-authorization-server")
    assert status == 200 and meta["issuer"] == parent.url
    assert jwt.decode(partner_exchange(parent.url), options={"verify_signature": False})["iss"] == parent.url
    parent.terminate()
    assert parent.wait() == 0
    assert len(parent.lines("server.stopping")) == 2 and len(parent.lines("server.stopped")) == 2
    assert connection_refused(first["port"])
    assert not any("Traceback" in line for line in parent.raw)


def test_port_0_without_a_public_url_makes_the_bound_url_the_issuer(tmp_path, servers):
    config = tmp_path / "broker.toml"
    config.write_text(PLAIN)
    servers.append(server := ServeProcess(config, "--port", "0"))
    assert server.port != 0 and server.url == f"http://127.0.0.1:{server.port}"
    status, meta = server.get("/.well-known/oauth-authorization-server")
    assert status == 200
    assert meta["issuer"] == server.url
    assert meta["token_endpoint"] == f"{server.url}/oauth2/token"
    assert meta["jwks_uri"] == f"{server.url}/oauth2/jwks"
    token = partner_exchange(server.url)
    _, jwks = server.get("/oauth2/jwks")
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]].key
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="dashboard", issuer=server.url)
    assert claims["client_id"] == "portal"
    assert (tmp_path / "keys").is_dir()                 # keys_dir is relative to the config file
    server.terminate()
    assert server.wait() == 0

