"""Our tokens' `jti`s come from a pooled CSPRNG: unique, 128 bits, never shared with a fork."""

from __future__ import annotations

import base64
import os

from service.issuing.issuer import _jti


def test_jtis_are_unique_128_bit_urlsafe_values() -> None:
    seen = {_jti() for _ in range(20_000)}          # crosses ~80 refills of the pool
    assert len(seen) == 20_000
    for jti in list(seen)[:100]:
        assert len(base64.urlsafe_b64decode(jti + "==")) == 16


def test_a_forked_child_does_not_reuse_the_parents_pool() -> None:
    _jti()                                          # the pool holds bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the child: report its next jti and leave
        os.close(read)
        os.write(write, _jti().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child and child != _jti()
