"""`serve --workers 2` spreads keep-alive connections evenly (service/http/balance.py): the
workers accept from one shared socket, the least loaded first; a dead or hung worker holds
nobody back; once every worker has stopped accepting, the port refuses connections.

Real `tokenbroker serve` processes and real sockets; which worker holds a connection is read
from the `/metrics` answer on it (`tokenbroker_process_info{pid="..."}`: the answering process).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import time
from collections import Counter

from tests.support.serve_process import GRACEFUL_MEMORY_TOML as CONFIG
from tests.support.serve_process import WAIT, ServeProcess, connection_refused

PID = re.compile(r'^tokenbroker_process_info\{pid="(\d+)"\} 1', re.MULTILINE)


def start_workers(tmp_path, servers, grace: int = 10) -> tuple[ServeProcess, list[int]]:
    """`serve --workers 2 --port 0`; the parent (its url set) and the two workers' pids."""
    config = tmp_path / "broker.toml"
    config.write_text(CONFIG.format(grace=grace))
    servers.append(parent := ServeProcess(config, "--port", "0", "--workers", "2", started=False))
    started = [parent.wait_for("server.started"), parent.wait_for("server.started")]
    parent.url = f"http://127.0.0.1:{started[0]['port']}"
    return parent, [line["pid"] for line in started]


def connect(port: int, count: int) -> list[http.client.HTTPConnection]:
    """`count` keep-alive connections, all opened (handshake done) before the first request."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT) for _ in range(count)]
    for conn in conns:
        conn.connect()
    return conns


def worker_of(conn: http.client.HTTPConnection) -> int:
    """The pid of the worker that answers on this connection (which stays open)."""
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    body = response.read().decode()
    assert response.status == 200 and response.getheader("Connection", "").lower() != "close"
    match = PID.search(body)
    assert match, body[:300]
    return int(match.group(1))


def close_all(conns: list[http.client.HTTPConnection]) -> None:
    for conn in conns:
        conn.close()


def test_32_keep_alive_connections_are_split_evenly_between_two_workers(tmp_path, servers):
    parent, pids = start_workers(tmp_path, servers)
    conns = connect(parent.port, 32)
    holders = [worker_of(conn) for conn in conns]
    split = Counter(holders)
    assert set(split) == set(pids), split
    assert all(15 <= n <= 17 for n in split.values()), split         # SO_REUSEPORT gave 21/11
    # A closed connection leaves its worker's count: close the first worker's, and (nearly)
    # every new connection goes to it, not half of them as with stale counts.
    first, second = pids
    close_all([conn for conn, pid in zip(conns, holders, strict=True) if pid == first])
    who, _ = answered_by(parent.port, split[first])
    assert who[first] >= split[first] - 2, who          # the first one or two may race the closes
    close_all(conns)
    parent.terminate()
    assert parent.wait() == 0


def answered_by(port: int, count: int) -> tuple[Counter, float]:
    """Open `count` new connections one by one: who answered each, and the slowest answer."""
    who: Counter = Counter()
    slowest = 0.0
    conns = []
    for _ in range(count):
        began = time.monotonic()
        conns += connect(port, 1)
        who[worker_of(conns[-1])] += 1
        slowest = max(slowest, time.monotonic() - began)
    close_all(conns)
    return who, slowest


def test_a_killed_worker_holds_nobody_back(tmp_path, servers):
    parent, (victim, survivor) = start_workers(tmp_path, servers)
    held = connect(parent.port, 32)
    assert Counter(worker_of(conn) for conn in held)[victim] >= 15    # the victim had its share
    os.kill(victim, signal.SIGKILL)                                   # a worker this test started
    exited = parent.wait_for("server.worker_exited")
    assert exited["pid"] == victim and exited["exit_code"] == -signal.SIGKILL
    who, slowest = answered_by(parent.port, 16)
    assert who == Counter({survivor: 16})
    assert slowest < 2.0, f"a new connection waited {slowest:.3f} s"  # the bound is 10 ms
    close_all(held)
    parent.terminate()
    parent.wait()
    assert len(parent.lines("server.stopped")) == 1


def test_a_hung_worker_holds_a_new_connection_for_milliseconds_only(tmp_path, servers):
    parent, (hung, other) = start_workers(tmp_path, servers)
    held = connect(parent.port, 32)
    assert Counter(worker_of(conn) for conn in held)[hung] >= 15
    os.kill(hung, signal.SIGSTOP)     # alive, its count the lowest-or-equal, but never accepting
    try:
        who, slowest = answered_by(parent.port, 8)
    finally:
        os.kill(hung, signal.SIGCONT)
    assert who == Counter({other: 8})
    assert slowest < 2.0, f"a new connection waited {slowest:.3f} s"  # the bound is 10 ms
    close_all(held)
    parent.terminate()
    assert parent.wait() == 0


def test_the_port_refuses_connections_once_every_worker_stopped_accepting(tmp_path, servers):
    parent, _ = start_workers(tmp_path, servers, grace=20)
    (idle,) = connect(parent.port, 1)
    holder = worker_of(idle)          # this worker drains for up to 20 s: its connection stays open
    parent.terminate()
    assert len([parent.wait_for("server.stopping") for _ in range(2)]) == 2
    deadline = time.monotonic() + WAIT
    while not connection_refused(parent.port):     # refused, not queued behind the parent's copy
        assert time.monotonic() < deadline, "the shared port still takes connections after SIGTERM"
        time.sleep(0.02)
    assert parent.proc.poll() is None             # ... while a worker is still draining
    idle.request("GET", "/healthz")
    response = idle.getresponse()
    assert response.status == 200 and response.getheader("Connection") == "close"
    response.read()
    idle.close()
    assert parent.wait() == 0
    assert holder in {line["pid"] for line in parent.lines("server.started")}


def test_a_port_in_use_is_one_bind_failed_line_and_exit_1(tmp_path, servers):
    config = tmp_path / "broker.toml"
    config.write_text(CONFIG.format(grace=10))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        servers.append(parent := ServeProcess(config, "--port", str(port), "--workers", "2", started=False))
        assert parent.wait() == 1
    failed = parent.lines("server.bind_failed")
    assert len(failed) == 1 and failed[0]["port"] == port
    assert not parent.lines("server.started") and not any("Traceback" in line for line in parent.raw)
