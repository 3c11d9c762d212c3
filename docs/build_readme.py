"""Put bench/RESULTS.md into README.md between the `bench:start` / `bench:end` markers.

README.md is written by hand (a newcomer's page); only its benchmark table comes from
`make bench`. `make readme` runs this; tests/test_readme.py fails when the table is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def build(readme: str | None = None) -> str:
    text = readme if readme is not None else (ROOT / "README.md").read_text()
    table = (ROOT / "bench" / "RESULTS.md").read_text().strip()
    block = f"{START}\n{table}\n{END}"
    return re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, text, flags=re.S)


if __name__ == "__main__":
    (ROOT / "README.md").write_text(build())
    sys.exit(0)
