"""Requests aiohttp cannot parse never put request bytes in a log line or a response.

Exactly the inputs of issue 14 (finding 1 and 2), sent over raw sockets to a real
`tokenbroker serve` process: a short `Content-Length` followed by a body holding a refresh token
and a client secret, a header line over 64 KiB starting `Bearer eyJ…`, and bodies in
Content-Encodings we cannot decode. Every line the process printed and every byte it answered
is scanned for the secrets; the answers are JSON, the log holds one `http.bad_request` each.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.support.serve_process import PARTNER_ISSUER_TOML, PORTAL_CLIENT_TOML, ServeProcess

REFRESH = "rt-SECRET-7f3c9a1e5b2d4f6a8c0e1b3d5f7a9c2e"
CLIENT_SECRET = "cs-SECRET-0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d"
JWT_HEAD = "eyJhbGciOiJSUzI1NiIsImtpZCI6IkxFQUtFRC1LSUQifQ"
LEAKED = (REFRESH, CLIENT_SECRET, JWT_HEAD, "LEAKED-KID", "grant_type=refresh_token", "_type=refresh")

CONFIG = """
[issuer]
keys_dir = "keys"

[store]
url = "memory://"
""" + PARTNER_ISSUER_TOML + PORTAL_CLIENT_TOML


@pytest.fixture(name="served", scope="module")
def _served(tmp_path_factory):
    config = tmp_path_factory.mktemp("framing") / "broker.toml"
    config.write_text(CONFIG)
    server = ServeProcess(config, "--port", "0")
    yield server
    server.stop()


def exchange(port: int, raw: bytes) -> bytes:
    """Send `raw` and read everything the server answers until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def responses(answer: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """(status, headers, body) of each response in `answer` (Content-Length framed)."""
    out = []
    while answer:
        head, _, rest = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        out.append((int(lines[0].split()[1]), headers, rest[:length]))
        answer = rest[length:]
    return out


def assert_clean(served: ServeProcess, answer: bytes) -> None:
    logged = "".join(served.raw)
    for secret in LEAKED:
        assert secret not in logged, f"{secret!r} was logged"
        assert secret.encode() not in answer, f"{secret!r} was echoed"
    assert "Traceback" not in logged and "Error handling request" not in logged


def bad_request_lines(served: ServeProcess, count: int) -> list[dict]:
    for _ in range(count):
        served.wait_for("http.bad_request")
    return served.lines("http.bad_request")


def test_a_body_longer_than_its_content_length_is_neither_logged_nor_echoed(served):
    body = f"grant_type=refresh_token&refresh_token={REFRESH}&client_id=portal&client_secret={CLIENT_SECRET}"
    raw = (b"POST /oauth2/token HTTP/1.1\r\nHost: broker\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: 5\r\nConnection: close\r\n\r\n" + body.encode())
    before = len(served.lines("http.bad_request"))
    answer = exchange(served.port, raw)
    assert_clean(served, answer)
    [(status, headers, content)] = responses(answer)
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert json.loads(content)["error"] == "invalid_request"
    line = bad_request_lines(served, 1)[before]
    assert line["kind"] == "BadHttpMessage" and line["bytes_received"] == len(raw) and line["level"] == "warning"


def test_a_header_line_over_64_kib_starting_with_a_bearer_token_is_neither_logged_nor_echoed(served):
    before = len(served.lines("http.bad_request"))
    value = "Bearer " + JWT_HEAD + "." + "A" * 70_000
    raw = f"GET /api/me HTTP/1.1\r\nHost: broker\r\nAuthorization: {value}\r\n\r\n".encode()
    answer = exchange(served.port, raw)
    [(status, headers, content)] = responses(answer)
    assert status == 400
    assert json.loads(content)["error"] == "invalid_request"
    lines = bad_request_lines(served, 1)
    assert len(lines) > before
    line = lines[-1]
    assert line["kind"] == "LineTooLong" and line["peer"] == "127.0.0.1" and line["bytes_received"] > 65536
    assert line["level"] == "warning"
    assert_clean(served, answer)


@pytest.mark.parametrize("encoding", ["br", "zstd", "x-unknown"])
def test_a_content_encoding_we_cannot_decode_is_a_415_json_without_detail(served, encoding):
    body = f"grant_type=refresh_token&refresh_token={REFRESH}".encode()
    raw = (f"POST /oauth2/token HTTP/1.1\r\nHost: broker\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           f"Content-Encoding: {encoding}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    answer = exchange(served.port, raw)
    [(status, headers, content)] = responses(answer)
    assert status == 415, answer[:200]
    assert headers["accept-encoding"] == "gzip, deflate"
    error = json.loads(content)
    assert error["error"] == "invalid_request"
    assert "install" not in error["error_description"].lower()
    assert_clean(served, answer)
    assert "install" not in "".join(served.raw).lower()


def test_garbage_instead_of_http_is_a_json_400_and_one_structured_warning(served):
    answer = exchange(served.port, b"\x16\x03\x01 not http at all " + CLIENT_SECRET.encode() + b"\r\n\r\n")
    [(status, _headers, content)] = responses(answer)
    assert status == 400 and json.loads(content)["error"] == "invalid_request"
    assert_clean(served, answer)


async def test_aiohttp_s_other_error_logs_carry_the_exception_type_only():
    from structlog.testing import capture_logs

    from service.http.protocol import BrokerServer

    async def never(_request):
        raise AssertionError("not called")

    handler = BrokerServer(never)()
    with capture_logs() as logs:
        handler.log_exception("Unhandled exception", exc_info=ValueError(f"header {CLIENT_SECRET}"))
    assert logs == [{"event": "http.connection_error", "kind": "ValueError", "bytes_received": 0,
                     "log_level": "error"}]
