"""Server processes for the bench: start, find their workers, read their CPU and RSS, stop.

Every process is started in its own session (process group), so stopping one also stops the
workers it spawned; `Stack` stops everything it started, in reverse order, even on errors or
Ctrl-C. Only the processes started here are ever signalled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 60.0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    started: list[dict] = field(default_factory=list)   # the `server.started` lines seen

    @property
    def pids(self) -> list[int]:
        """The serving processes: the workers when there are any, else the process itself."""
        workers = [int(s["pid"]) for s in self.started if "pid" in s]
        return workers or [self.popen.pid]


def _started_lines(path: Path) -> list[dict]:
    found = []
    for line in path.read_text().splitlines():
        if '"server.started"' in line and line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes (from /proc/<pid>/stat), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])   # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Stack:
    """The processes of one bench run; a context manager that always cleans up."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, name: str, argv: list[str], *, expect: int = 1, env: dict | None = None) -> Proc:
        """Run `argv`, wait for `expect` JSON `server.started` lines in its stdout.

        stdout goes to a file (`<name>.stdout`), like a container runtime's log file: a pipe read
        by this process would slow the server down with back-pressure and measure the reader.
        """
        out_path = self.workdir / f"{name}.stdout"
        with open(out_path, "w") as out, open(self.workdir / f"{name}.stderr", "w") as err:
            popen = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=env, start_new_session=True,
                                     cwd=Path(__file__).resolve().parent.parent)
        proc = Proc(name, popen)
        self.procs.append(proc)
        deadline = time.monotonic() + START_TIMEOUT
        while len(proc.started) < expect:
            if popen.poll() is not None or time.monotonic() > deadline:
                tail = (self.workdir / f"{name}.stderr").read_text()[-2000:]
                raise SystemExit(f"bench: {name} did not start (exit {popen.poll()}):\n{tail}")
            time.sleep(0.1)
            proc.started = _started_lines(out_path)
        return proc

    def stop(self, proc: Proc) -> None:
        if proc.popen.poll() is None:
            try:
                os.killpg(proc.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=10)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc)
            except Exception as exc:   # keep stopping the others
                print(f"bench: could not stop {proc.name}: {exc}")


def worker_pids(proc: Proc) -> list[int]:
    """Serving pids: from `server.started` lines, else the process's children, else itself."""
    if proc.started and all("pid" in s for s in proc.started):
        return proc.pids
    return _children(proc.popen.pid) or [proc.popen.pid]
