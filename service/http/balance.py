"""`serve --workers N`: every worker accepts from ONE shared listening socket, least loaded first.

With a SO_REUSEPORT socket per worker the kernel picks a worker by a hash of the connection's
addresses, so 32 keep-alive connections land 15/17 or 21/11 and one worker saturates while the
other idles. Here the parent binds one socket and shares it, with `AcceptCounts` (one int64
slot per worker in a shared memory block: its open connections), with every worker. Each
worker's `BalancedSite` accepts a pending connection only while its own count is the lowest of
the live workers' counts; above it, it steps aside (stops watching the socket, looks again
after HOLD_SECONDS) so a less loaded worker takes it. A connection is never held for long: once
the socket has stayed readable for MAX_WAIT_SECONDS (the others are dead, hung or saturated) the
worker accepts anyway. A slot of DEAD is skipped: every slot is DEAD until its worker starts accepting,
the parent writes it for a worker that exited, and a worker writes it for itself when it stops
accepting (SIGTERM).
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import select
import socket

from aiohttp import web

from ..logs import get_logger
from .protocol import BrokerServer

log = get_logger("tokenbroker.http")
SLOT = 8                 # bytes: one int64 per worker
DEAD = -1                # a worker that does not accept (exited, or stopped at SIGTERM)
HOLD_SECONDS = 0.001     # a worker above the minimum looks again after this
MAX_WAIT_SECONDS = 0.01  # ... and accepts anyway once the socket has been readable this long
RETRY_SECONDS = 1.0      # accept failed otherwise (EMFILE, ENOMEM, ...): again after this, as asyncio does
_GONE = (errno.ECONNABORTED, errno.EPROTO, errno.EPERM)   # accept(2): this connection only


class AcceptCounts:
    """The shared block: slot i is worker i's open connections (or DEAD). Every worker writes
    only its own slot; the parent writes DEAD into the slot of a worker that exited."""

    def __init__(self, fd: int, workers: int) -> None:
        self._map = mmap.mmap(fd, workers * SLOT)
        self._slots = memoryview(self._map).cast("q")

    @classmethod
    def create(cls, workers: int) -> tuple[AcceptCounts, int]:
        """A new block (a memfd the children inherit), every slot DEAD until its worker accepts:
        a worker still starting must not hold the others back; returns it and its descriptor."""
        fd = os.memfd_create("tokenbroker-accept-counts")   # close-on-exec: Popen(pass_fds=) hands it on
        os.ftruncate(fd, workers * SLOT)
        counts = cls(fd, workers)
        for index in range(workers):
            counts[index] = DEAD
        return counts, fd

    def __getitem__(self, index: int) -> int:
        return int(self._slots[index])

    def __setitem__(self, index: int, value: int) -> None:
        self._slots[index] = value

    def minimum(self) -> int:
        """The lowest count among the live workers (DEAD if none is live)."""
        live = [n for n in self._slots if n >= 0]
        return min(live) if live else DEAD

    def close(self) -> None:
        self._slots.release()
        self._map.close()


class BalancedSite(web.BaseSite):
    """Accepts from a shared listening socket with the event loop's reader, one connection at a
    time, while this worker's count is the live minimum; hands each to `runner.server` with
    `loop.connect_accepted_socket` (uvloop and asyncio alike)."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, counts: AcceptCounts,
                 index: int) -> None:
        super().__init__(runner)
        self._sock = sock
        self._counts = counts
        self._index = index
        self._open = 0
        self._reading = False
        self._stopped = False
        self._readable_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        self._tasks: set[asyncio.Task[object]] = set()
        self._loop = asyncio.get_running_loop()
        host, self.port = sock.getsockname()[:2]
        self._name = f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if isinstance(server, BrokerServer):
            server.on_connection_lost = self._lost
        self._sock.setblocking(False)
        self._publish()
        self._watch()

    async def stop(self) -> None:
        """Stop accepting: the slot says DEAD and this worker's copy of the socket is closed (the
        listener closes once every worker's copy is); open connections are left to the drain."""
        if not self._stopped:
            self._stopped = True
            self._unwatch()
            if self._timer is not None:
                self._timer.cancel()
            self._counts[self._index] = DEAD
            self._poll.unregister(self._sock.fileno())
            self._sock.close()
        await super().stop()

    # -- the shared count ------------------------------------------------------------------

    def _publish(self) -> None:
        if not self._stopped:
            self._counts[self._index] = self._open

    def _lost(self) -> None:
        self._open -= 1
        self._publish()

    # -- accepting ---------------------------------------------------------------------------

    def _watch(self) -> None:
        if not self._reading and not self._stopped:
            self._loop.add_reader(self._sock.fileno(), self._on_readable)
            self._reading = True

    def _unwatch(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False

    def _hold(self, seconds: float) -> None:
        """Step aside for `seconds`: no level-triggered wake-ups meanwhile."""
        self._unwatch()
        self._timer = self._loop.call_later(seconds, self._look_again)

    def _look_again(self) -> None:
        self._timer = None
        if self._stopped:
            return
        if self._poll.poll(0):
            self._on_readable()
        else:                              # taken by another worker meanwhile
            self._readable_since = None
            self._watch()

    def _on_readable(self) -> None:
        while not self._stopped:
            if self._open > self._counts.minimum():
                now = self._loop.time()
                if self._readable_since is None:
                    self._readable_since = now
                if now - self._readable_since < MAX_WAIT_SECONDS:
                    self._hold(HOLD_SECONDS)
                    return
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                self._readable_since = None
                self._watch()
                return
            except OSError as exc:
                if exc.errno in _GONE:     # that connection is gone; the next one may be fine
                    continue
                log.error("server.accept_failed", error=errno.errorcode.get(exc.errno or 0, str(exc.errno)))
                self._hold(RETRY_SECONDS)  # out of descriptors or memory: no busy loop meanwhile
                return
            self._readable_since = None
            self._open += 1
            self._publish()
            self._hand_over(conn)
        self._unwatch()

    def _hand_over(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = self._runner.server
        assert server is not None
        task = self._loop.create_task(self._loop.connect_accepted_socket(server, conn))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._handed_over(done, conn))

    def _handed_over(self, task: asyncio.Task[object], conn: socket.socket) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is not None:   # never became a connection
            error = task.exception() if not task.cancelled() else None
            log.warning("server.accept_failed", error=type(error).__name__ if error else "cancelled")
            conn.close()
            self._open -= 1
            self._publish()
