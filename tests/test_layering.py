"""Dependencies point one way; production code never imports the emulators or the demo client.

The rank table is the architecture (docs/internals.md): a module may import a module of a lower
rank, its own package, or (only in the entry layer and among the leaves) a module of its own rank.
Relative imports are resolved first, so `from ..grants import x` counts like the absolute form.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[1] / "service"
EMULATORS = Path(__file__).resolve().parents[1] / "emulators"
DEV_ONLY = ("emulators", "minimal_client")
# Only these functions may import the dev-only packages, lazily.
ALLOWED_FUNCTIONS = {"cmd_emulate", "cmd_dev", "run_dev", "_start_emulators", "_start_client"}
FRAMEWORK_FREE = ("grants", "validation", "issuing", "storage", "downstream")

ENTRY, LEAF = 6, 1
RANKS: dict[str, float] = {
    **dict.fromkeys(("__main__", "cli", "cli_accounts", "cli_admin", "cli_explain", "server", "devstack", "app"),
                    ENTRY),
    "http": 5,
    "typedefs": 4.5,   # the app's keys, typed with the collaborators below (annotations only)
    "grants": 4,
    "validation": 3, "downstream": 3, "issuing": 3,
    "storage": 2,
    **dict.fromkeys(("", "errors", "settings", "logs", "metrics", "digest", "telemetry"), LEAF),
    # the one JWT verifier (compact JWS parsing, signatures, claims, times): a leaf that only
    # needs errors, shared by validation (foreign tokens) and issuing (our own)
    "validation.jwt_checks": LEAF,
}
PRIVATE_PACKAGES = ("settings",)   # outside it, only `from <root>.settings import X`


def resolved_imports(root: Path) -> Iterator[tuple[str, str, int]]:
    """(importing module, imported module, line) for every import under the package at `root`,
    with relative imports resolved against the importing module's package."""
    top = root.name
    for path in sorted(root.rglob("*.py")):
        parts = [top, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        package = parts if is_package else parts[:-1]
        module = ".".join(parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield module, alias.name, node.lineno
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join([*base, *([node.module] if node.module else [])])
                if node.module is None:   # `from . import x`: x is a module of that package
                    for alias in node.names:
                        yield module, f"{target}.{alias.name}", node.lineno
                else:
                    yield module, target, node.lineno


def _area(module: str, ranks: dict[str, float] = RANKS) -> str:
    """The most specific entry of the rank table the module falls under (`validation.jwt_checks`
    before `validation`)."""
    parts = module.split(".")[1:]
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in ranks:
            return ".".join(parts[:n])
    return parts[0] if parts else ""


def layer_violations(root: Path, ranks: dict[str, float] = RANKS) -> list[str]:
    """Every import that points up the rank table, across peers, or into a private package."""
    top = root.name
    problems = []
    for module, target, line in resolved_imports(root):
        if target != top and not target.startswith(top + "."):
            continue
        source_area, target_area = _area(module, ranks), _area(target, ranks)
        if target_area not in ranks and target.rsplit(".", 1)[0] == top:   # `from <root> import name`
            target_area = ""
        if source_area == target_area:
            continue
        where = f"{module}:{line} imports {target}"
        if source_area not in ranks or target_area not in ranks:
            problems.append(f"{where}: not in the rank table")
            continue
        mine, theirs = ranks[source_area], ranks[target_area]
        if theirs > mine or (theirs == mine and mine not in (ENTRY, LEAF)):
            problems.append(f"{where}: rank {mine} may not import rank {theirs}")
        if target_area in PRIVATE_PACKAGES and target.count(".") > 1:
            problems.append(f"{where}: import from {top}.{target_area}, not its private modules")
    return problems


def test_every_import_in_service_follows_the_rank_table():
    assert layer_violations(SERVICE) == []


def test_every_service_module_has_a_rank():
    areas = {p.name.removesuffix(".py") for p in SERVICE.glob("*")
             if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    assert areas - set(RANKS) - {"__init__"} == set()


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "service"
    for name, text in {"__init__.py": "", "storage/__init__.py": "", "grants/__init__.py": "",
                       "settings/__init__.py": "", "settings/model.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_planted_upward_relative_import_fails_the_check(tmp_path):
    root = _plant(tmp_path, {"storage/memory.py": "from ..grants import policy\n",
                             "grants/policy.py": "from . import base\nfrom ..storage import memory\n",
                             "grants/base.py": ""})
    assert layer_violations(root) == ["service.storage.memory:1 imports service.grants: rank 2 may not import rank 4"]


def test_a_planted_upward_absolute_import_and_a_peer_import_fail_the_check(tmp_path):
    root = _plant(tmp_path, {"storage/memory.py": "import service.http.routes\n",
                             "issuing/__init__.py": "", "issuing/issuer.py": "from service.downstream import acs\n"})
    assert layer_violations(root) == [
        "service.issuing.issuer:1 imports service.downstream: rank 3 may not import rank 3",
        "service.storage.memory:1 imports service.http.routes: rank 2 may not import rank 5",
    ]


def test_a_private_settings_module_imported_from_outside_fails_the_check(tmp_path):
    root = _plant(tmp_path, {"storage/memory.py": "from ..settings.model import Secret\n",
                             "settings/__init__.py": "from .model import Secret\n"})
    assert layer_violations(root) == [
        "service.storage.memory:1 imports service.settings.model: import from service.settings, not its private modules"]


def _imports(tree: ast.AST):
    """Yield (module name, enclosing function name or None) for every import."""
    stack: list[str] = []

    def visit(node: ast.AST):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            stack.append(node.name)
            for child in ast.iter_child_nodes(node):
                yield from visit(child)
            stack.pop()
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (stack[-1] if stack else None)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, (stack[-1] if stack else None)
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    yield from visit(tree)


def test_service_imports_dev_only_packages_only_lazily_in_the_dev_commands():
    offenders = []
    for path in SERVICE.rglob("*.py"):
        for module, function in _imports(ast.parse(path.read_text())):
            if module.split(".")[0] in DEV_ONLY and function not in ALLOWED_FUNCTIONS:
                offenders.append(f"{path.relative_to(SERVICE)}: {module} in {function}")
    assert offenders == []


def test_emulators_never_import_the_service():
    offenders = [str(p) for p in EMULATORS.rglob("*.py")
                 for module, _ in _imports(ast.parse(p.read_text())) if module.split(".")[0] == "service"]
    assert offenders == []


def test_core_packages_do_not_import_aiohttp_web():
    offenders = []
    for package in FRAMEWORK_FREE:
        for path in (SERVICE / package).rglob("*.py"):
            for module, _ in _imports(ast.parse(path.read_text())):
                if module in ("aiohttp.web", "service.http") or module.startswith("service.http."):
                    offenders.append(str(path.relative_to(SERVICE)))
            text = path.read_text()
            if "from aiohttp import web" in text or "from ..http" in text:
                offenders.append(str(path.relative_to(SERVICE)))
    assert offenders == []
