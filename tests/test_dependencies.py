"""Every third-party module the shipped packages import comes from a declared runtime dependency
(`[project].dependencies`), not only from the dev extra or a dependency's dependency. The floors
themselves are proven by `make test-min-versions` (.ci/min_versions.py)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("service", "emulators", "minimal_client")


def _declared() -> set[str]:
    """Runtime dependencies and the optional runtime extras ([telemetry], [speed]; not [dev]):
    code that needs an extra imports it only when its feature is configured."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for name, reqs in project.get("optional-dependencies", {}).items() if name != "dev"
              for r in reqs]
    return {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower().replace("_", "-")
            for r in [*project["dependencies"], *extras]}


def _imported_top_level_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for package in SHIPPED:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found = [node.module]
                else:
                    continue
                for name in found:
                    names.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return names


def test_every_third_party_import_is_a_declared_runtime_dependency():
    distributions = packages_distributions()
    undeclared = {}
    for name, where in _imported_top_level_names().items():
        if name in sys.stdlib_module_names or name in SHIPPED:
            continue
        dists = {d.lower().replace("_", "-") for d in distributions.get(name, [])}
        if not dists & _declared():
            undeclared[name] = (where, sorted(dists))
    assert undeclared == {}


def test_every_runtime_dependency_has_a_floor():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [r for r in project["dependencies"] if ">=" not in r] == []
