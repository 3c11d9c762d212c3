"""Several `tokenbroker serve` replicas on the shared Redis (127.0.0.1:6379, db 11), each test
module under a key prefix of its own (deleted afterwards, never FLUSHDB).

    with redis_prefix("tokenbroker-shared-caches") as prefix, serve_replicas(config, 3) as (a, b, c):
        status, body = call(a.url, "/api/user", headers)          # POST; {} for an empty body
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.serve_process import WAIT, ServeProcess, delete_prefix

REDIS = "redis://127.0.0.1:6379/11"


@contextmanager
def redis_prefix(name: str) -> Iterator[str]:
    prefix = f"{name}:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        delete_prefix(REDIS, prefix)


@contextmanager
def serve_replicas(config: Path, count: int) -> Iterator[list[ServeProcess]]:
    """`count` serve processes on `config`, each on a free port; all stopped on the way out."""
    servers = [ServeProcess(config, "--port", "0", started=False) for _ in range(count)]
    try:
        for server in servers:
            server.wait_started()
        yield servers
    finally:
        for server in servers:
            server.stop()


def call(url: str, path: str, headers: dict[str, str], method: str = "POST") -> tuple[int, dict]:
    """(status, JSON body; {} for an empty one such as a 204)."""
    req = urllib.request.Request(url + path, data=b"" if method == "POST" else None, headers=headers,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    return status, json.loads(raw) if raw else {}


def outside_ciphertext(value: bytes) -> bytes:
    """A stored Redis value without its AES-GCM ciphertext field `c`: that is random base64, in
    which any three characters — `eyJ` too, about once in 200 values of 1 KB — may appear.
    What remains (the envelope, or a value that is not sealed) must hold no JWT."""
    try:
        sealed = json.loads(value)
    except ValueError:
        return value
    if isinstance(sealed, dict) and "c" in sealed:
        return json.dumps({k: v for k, v in sealed.items() if k != "c"}).encode()
    return value
