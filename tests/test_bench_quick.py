"""`python -m bench --quick` (the smoke test of `make bench`): the harness starts everything,
drives every scenario with wrk, prints the whole report and cleans up. No timing is asserted:
speed targets live in bench/RESULTS.md, measured by `make bench`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from bench.scenarios import EXTRA, ROWS, SCALING
from tests.support.serve_process import ROOT, clean_env


@pytest.mark.timeout(600)
def test_the_quick_bench_runs_every_scenario_without_errors_and_cleans_up(tmp_path):
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: run `make system-deps` (as root)")
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--workdir", str(tmp_path)],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=540, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout
    for row in [*ROWS, SCALING]:
        assert f"| {row.label} |" in report
    for _key, label in EXTRA:
        assert f"| {label} |" in report
    assert "Errors (non-2xx, socket errors, timeouts): 0 of" in report
    # the broker's own counters were read from /metrics (quick lists are short: hits or misses)
    (row,) = [line for line in report.splitlines() if line.startswith("| teams_distinct | acs_teams |")]
    hits, misses = (int(cell.strip().replace(",", "")) for cell in row.strip("|").split("|")[2:4])
    assert hits + misses > 0
    assert "RSS per broker worker" in report
    # nothing left running: every server that announced its pid is gone
    pids = [json.loads(line)["pid"] for out in tmp_path.glob("*.stdout")
            for line in out.read_text().splitlines() if '"server.started"' in line and '"pid"' in line]
    assert len(pids) >= 5 and all(_gone(pid) for pid in pids)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
