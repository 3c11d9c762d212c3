"""The lowest-versions install check (`make test-min-versions`).

    python .ci/min_versions.py constraints   # pyproject floors as `name==floor`, one a line
    python .ci/min_versions.py import-all    # import every module of the installed packages

Every runtime dependency in `[project].dependencies` and in the runtime extras must carry a `>=` floor; the constraints
pin each to exactly that floor, so `pip install -c constraints.txt .` proves the floors install
together and `import-all` proves the code runs on them (an import of a name that only a later
release has fails here, as `web.RequestKey` did on aiohttp 3.10).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "emulators", "minimal_client")
FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$")


def constraints() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for name, reqs in project.get("optional-dependencies", {}).items() if name != "dev"
              for r in reqs]   # the runtime extras ([telemetry], [speed]) are installed and pinned too
    lines = []
    for requirement in [*project["dependencies"], *extras]:
        name, _extras, spec = FLOOR.match(requirement).groups()
        floors = [part.strip()[2:] for part in spec.split(",") if part.strip().startswith(">=")]
        if not floors:
            raise SystemExit(f"{requirement!r}: every runtime dependency needs a >= floor")
        lines.append(f"{name}=={floors[0]}")
    return lines


def import_all() -> int:
    failures = []
    count = 0
    for package in PACKAGES:
        top = importlib.import_module(package)
        if Path(top.__file__).resolve().parent == ROOT / package:
            raise SystemExit(f"{package} imported from the source tree, not the installed package")
        modules = pkgutil.walk_packages(top.__path__, prefix=f"{package}.",
                                        onerror=lambda name: failures.append(f"{name}: cannot import"))
        for info in modules:
            if info.name.endswith(".__main__"):   # runs its command on import; it only calls cli.main
                continue
            count += 1
            try:
                importlib.import_module(info.name)
            except Exception as e:  # noqa: BLE001 - every failure is reported, then the run fails
                failures.append(f"{info.name}: {e.__class__.__name__}: {e}")
    print(f"imported {count} modules of {', '.join(PACKAGES)}")
    for failure in failures:
        print("FAILED", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["constraints"]:
        print("\n".join(constraints()))
    elif sys.argv[1:] == ["import-all"]:
        sys.exit(import_all())
    else:
        raise SystemExit(__doc__)
