"""Dependencies point one way; production code never imports the emulators or the demo client."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[1] / "service"
EMULATORS = Path(__file__).resolve().parents[1] / "emulators"
DEV_ONLY = ("emulators", "minimal_client")
# Only these functions may import the dev-only packages, lazily.
ALLOWED_FUNCTIONS = {"cmd_emulate", "cmd_dev", "run_dev", "_start_emulators", "_start_client"}
FRAMEWORK_FREE = ("grants", "validation", "issuing", "storage", "downstream")


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
