"""`tokenbroker serve` on the hot path: uvloop when installed, one JSON line per request with the
client in it, written straight to stdout (no stdlib logging), request ids that stay unique."""

from __future__ import annotations

import importlib.util

from tests.support.serve_process import (
    PARTNER_ISSUER_TOML,
    PORTAL_CLIENT_TOML,
    ServeProcess,
    partner_exchange,
)

CONFIG = """
[server]
port = 0

[issuer]
keys_dir = "keys"

[store]
url = "memory://"
""" + PARTNER_ISSUER_TOML + PORTAL_CLIENT_TOML


def test_serve_runs_on_uvloop_and_logs_one_json_line_per_request(tmp_path, servers):
    config = tmp_path / "broker.toml"
    config.write_text(CONFIG)
    server = ServeProcess(config, "--port", "0")
    servers.append(server)
    started = server.lines("server.started")[0]
    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    assert started["event_loop"] == expected and started["pid"] > 0

    token = partner_exchange(server.url)
    assert token.count(".") == 2
    server.wait_for("token_exchange")           # the audit line of the exchange
    line = server.wait_for("http.request")      # then the canonical request line
    assert (line["route"], line["method"], line["status"], line["client_id"]) == (
        "/oauth2/token", "POST", 200, "portal")
    assert line["level"] == "info" and line["timestamp"].endswith("Z")
    assert "process" not in line and "pid" not in line      # no getpid() per line
    assert not any(token in raw for raw in server.raw)       # never the token


def test_generated_request_ids_are_distinct_and_an_incoming_one_is_kept(tmp_path, servers):
    config = tmp_path / "broker.toml"
    config.write_text(CONFIG)
    server = ServeProcess(config, "--port", "0")
    servers.append(server)
    import urllib.request
    ids = set()
    for _ in range(20):
        with urllib.request.urlopen(server.url + "/healthz", timeout=10) as resp:
            ids.add(resp.headers["X-Request-Id"])
    assert len(ids) == 20 and all(8 < len(i) <= 128 for i in ids)
    req = urllib.request.Request(server.url + "/healthz", headers={"X-Request-Id": "abc-123.x"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["X-Request-Id"] == "abc-123.x"
    while (line := server.wait_for("http.request")).get("request_id") != "abc-123.x":
        assert line.get("request_id") in ids         # the earlier requests' lines, in order
