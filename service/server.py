"""Running the app: bind, announce `server.started`, drain on SIGTERM, reload on SIGHUP.

SIGTERM: the listener closes; for up to `server.shutdown_grace` seconds every open connection
is still answered (each response with `Connection: close`, see service/http/protocol.py), then
whatever is left is closed and the process exits 0.

`--workers N` (N > 1): this process binds one listening socket and a block of connection counts
and starts N `serve` children that inherit both (`--listen-fd`, `--balance-fd`); each accepts
from the shared socket, least loaded first (service/http/balance.py). The parent forwards
SIGTERM/SIGINT/SIGHUP and marks an exited worker's count dead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web

from .http.balance import DEAD, AcceptCounts, BalancedSite
from .http.protocol import BrokerRunner, BrokerServer
from .logs import configure_logging, get_logger
from .settings import ServerSettings, Settings

log = get_logger("tokenbroker.server")


@dataclass(frozen=True)
class SharedListener:
    """What a worker of `serve --workers N` inherits from its parent (hidden CLI options)."""

    listen_fd: int
    balance_fd: int
    index: int
    workers: int


def _bound_port(site: web.BaseSite, fallback: int) -> int:
    if isinstance(site, BalancedSite):
        return site.port
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    return sockets[0].getsockname()[1] if sockets else fallback


def _bind_ephemeral(settings: Settings) -> tuple[Settings, socket.socket]:
    """`--port 0`: bind first, so a derived `public_url` (our tokens' issuer) names the real port."""
    host = settings.server.host
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = settings.server
    derived = ServerSettings(host=host, port=0).public_url
    public_url = "" if server.public_url == derived else server.public_url
    return replace(settings, server=replace(server, port=port, public_url=public_url)), sock


async def run_app(settings: Settings, *, reuse_port: bool = False,
                  shared: SharedListener | None = None) -> int:
    from .app import create_app
    from .typedefs import RELOAD_HOOKS

    stop = asyncio.Event()  # SIGTERM during startup also ends cleanly, with exit 0
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sock = None
    if shared is not None:
        sock = socket.socket(fileno=shared.listen_fd)
    elif settings.server.port == 0:
        settings, sock = _bind_ephemeral(settings)
    app = create_app(settings)
    grace = float(settings.server.shutdown_grace)
    # The grace is spent in BrokerServer.drain; what is still running after it is cancelled at once
    # (aiohttp reads a shutdown_timeout of 0 as "no limit").
    runner = BrokerRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.001)
    try:
        await runner.setup()
    except Exception as exc:  # a component could not start (store, keys, ...): say which, exit 1
        log.error("server.startup_failed", error=type(exc).__name__, detail=str(exc)[:300])
        await runner.cleanup()
        if sock is not None:
            sock.close()
        return 1
    if stop.is_set():
        await runner.cleanup()
        if sock is not None:
            sock.close()
        log.info("server.stopped", before_start=True)
        return 0
    host, port = settings.server.host, settings.server.port
    site: web.BaseSite
    if shared is not None and sock is not None:
        counts = AcceptCounts(shared.balance_fd, shared.workers)
        os.close(shared.balance_fd)
        site = BalancedSite(runner, sock, counts, shared.index)
    elif sock is not None:
        site = web.SockSite(runner, sock, backlog=1024)
    else:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        log.error("server.bind_failed", host=host, port=port, error=str(exc))
        await runner.cleanup()
        return 1
    reload_hooks = app[RELOAD_HOOKS]

    def on_hup() -> None:
        for hook in reload_hooks:
            hook()
        log.info("server.reloaded", hooks=len(reload_hooks))

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    log.info("server.started", host=host, port=_bound_port(site, port), pid=os.getpid(),
             event_loop=type(loop).__module__.split(".")[0],
             public_url=settings.server.public_url)
    await stop.wait()
    log.info("server.stopping", grace_seconds=grace)
    await site.stop()  # stop accepting; open connections are answered, with `Connection: close`
    server = runner.server
    left = await server.drain(grace) if isinstance(server, BrokerServer) else 0
    await runner.cleanup()  # closes what is left after the grace
    log.info("server.stopped", connections_closed_at_grace=left)
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """The one listening socket of `--workers N` (port 0: an ephemeral port, read back)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _run_workers(settings: Settings, workers: int, config: Path | None) -> int:
    """N processes accepting from one socket, balanced by their connection counts; SIGTERM,
    SIGINT and SIGHUP are passed on to every worker."""
    host = settings.server.host
    try:
        sock = _listen(host, settings.server.port)
    except OSError as exc:
        log.error("server.bind_failed", host=host, port=settings.server.port, error=str(exc))
        return 1
    port = sock.getsockname()[1]
    counts, counts_fd = AcceptCounts.create(workers)
    argv = [sys.executable, "-m", "service", "serve", "--workers", "1", "--host", host, "--port", str(port),
            "--listen-fd", str(sock.fileno()), "--balance-fd", str(counts_fd),
            "--worker-count", str(workers)]
    if config:
        argv += ["--config", str(config)]
    children = [subprocess.Popen([*argv, "--worker-index", str(i)], pass_fds=(sock.fileno(), counts_fd))
                for i in range(workers)]
    sock.close()        # once every worker has closed its copy, new connections are refused
    os.close(counts_fd)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    running = dict(enumerate(children))
    while running:
        try:   # wait for any child to exit, leaving it for Popen to reap
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            break
        for index, child in list(running.items()):
            if child.poll() is not None:
                counts[index] = DEAD      # the others stop comparing themselves with it
                del running[index]
                log.info("server.worker_exited", pid=child.pid, exit_code=child.returncode)
    counts.close()
    codes = [child.wait() for child in children]
    return max(codes) if codes else 0


def serve(settings: Settings, *, workers: int = 1, reuse_port: bool = False,
          config: Path | None = None, shared: SharedListener | None = None) -> int:
    configure_logging(json=True)
    if workers > 1:
        return _run_workers(settings, workers, config)
    use_uvloop()
    return asyncio.run(run_app(settings, reuse_port=reuse_port, shared=shared))


def use_uvloop() -> bool:
    """Run on uvloop when it is installed (the `[speed]` extra); plain asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
