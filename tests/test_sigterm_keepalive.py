"""Nothing is lost at SIGTERM (issue 14, finding 4): raw keep-alive sockets against a real
`tokenbroker serve`.

After SIGTERM every response carries `Connection: close`; a request the server has begun to read
is answered; a connection idle at that moment is answered if its next request arrives within
`server.shutdown_grace`, else closed. So a client that honours `Connection: close` loses nothing.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from tests.support.serve_process import (
    GRACEFUL_MEMORY_TOML,
    PARTNER_ISSUER_TOML,
    PORTAL_CLIENT_TOML,
    WAIT,
    ServeProcess,
)

CONFIG = GRACEFUL_MEMORY_TOML + PARTNER_ISSUER_TOML + PORTAL_CLIENT_TOML
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: broker\r\n\r\n"


def start(tmp_path, servers, *args: str, grace: int) -> ServeProcess:
    config = tmp_path / "broker.toml"
    config.write_text(CONFIG.format(grace=grace))
    servers.append(server := ServeProcess(config, "--port", "0", *args))
    return server


def read_response(sock: socket.socket, buffer: bytearray) -> dict[str, str] | None:
    """One response's headers (lower-case names); None when the server closed or reset first."""
    while b"\r\n\r\n" not in buffer:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        rest += chunk
    buffer[:] = rest[length:]
    headers[":status"] = lines[0].split()[1]
    return headers


class LoopingClient(threading.Thread):
    """request → response on one keep-alive connection, until a response says `Connection: close`."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sent = self.answered = 0
        self.closed_by_header = False
        self.statuses: set[str] = set()

    def run(self) -> None:
        buffer = bytearray()
        with self.sock:
            while True:
                try:
                    self.sock.sendall(REQUEST)
                except OSError:
                    return
                self.sent += 1
                headers = read_response(self.sock, buffer)
                if headers is None:
                    return
                self.answered += 1
                self.statuses.add(headers[":status"])
                if headers.get("connection", "").lower() == "close":
                    self.closed_by_header = True
                    return


@pytest.mark.parametrize("workers", ["1", "2"])
def test_32_looping_keep_alive_connections_lose_no_request_at_sigterm(tmp_path, servers, workers):
    server = start(tmp_path, servers, "--workers", workers, grace=10)
    clients = [LoopingClient(server.port) for _ in range(32)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + WAIT
    while sum(c.answered for c in clients) < 32 * 5:
        assert time.monotonic() < deadline, "the clients never got going"
        time.sleep(0.02)
    server.terminate()
    for client in clients:
        client.join(WAIT)
    assert server.wait() == 0
    lost = sum(c.sent - c.answered for c in clients)
    assert lost == 0, f"{lost} requests got no answer"
    assert all(c.closed_by_header for c in clients), "a connection ended without Connection: close"
    assert set().union(*(c.statuses for c in clients)) == {"200"}


def test_idle_and_half_read_connections_at_sigterm(tmp_path, servers):
    server = start(tmp_path, servers, grace=4)
    idle, silent, partial = (socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) for _ in range(3))
    buffers = [bytearray(), bytearray(), bytearray()]
    for sock, buffer in zip((idle, silent), buffers, strict=False):   # one keep-alive exchange each
        sock.sendall(REQUEST)
        assert read_response(sock, buffer)[":status"] == "200"
    partial.sendall(REQUEST[:20])                                     # a request begun
    time.sleep(0.2)     # let the server read those bytes before the signal (not an assertion)
    server.terminate()
    server.wait_for("server.stopping")
    partial.sendall(REQUEST[20:])
    answer = read_response(partial, buffers[2])
    assert answer is not None and answer[":status"] == "200" and answer["connection"] == "close"
    idle.sendall(REQUEST)                                             # the next request, within the grace
    answer = read_response(idle, buffers[0])
    assert answer is not None and answer[":status"] == "200" and answer["connection"] == "close"
    assert read_response(silent, buffers[1]) is None                  # closed at the end of the grace
    assert server.wait() == 0
    stopped = server.lines("server.stopped")[-1]
    assert stopped["connections_closed_at_grace"] == 1
    for sock in (idle, silent, partial):
        sock.close()


def test_wrk_loses_no_request_on_an_open_connection_at_sigterm(tmp_path, servers):
    """wrk (32 keep-alive connections) through a SIGTERM: no read error (a connection closed or
    reset while its request waited) and no timeout. wrk reconnects at once after each
    `Connection: close`; once the listener has closed those new connections are refused, which
    wrk counts as write errors: nothing was sent on them, so nothing was lost."""
    if shutil.which("wrk") is None:
        pytest.fail("`wrk` is not installed: run `make system-deps` (as root; it apt-installs wrk)")
    server = start(tmp_path, servers, grace=10)
    wrk = subprocess.Popen(["wrk", "-t", "2", "-c", "32", "-d", "4s", f"{server.url}/healthz"],
                           stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT
    while not server.lines("http.request") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)       # let the load run a while before the signal (not an assertion)
    server.terminate()
    assert server.wait() == 0
    out, _ = wrk.communicate(timeout=WAIT)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    completed = int(re.search(r"(\d+) requests in", out).group(1))
    assert completed > 100, out
    if errors is not None:
        connect, read, _write, timeout = map(int, errors.groups())
        assert (connect, read, timeout) == (0, 0, 0), out
