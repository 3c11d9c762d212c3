"""README.md is a newcomer's page: short, the two commands, links that resolve; the reference
lives in docs/ and names every contract route."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _builder():
    spec = importlib.util.spec_from_file_location("build_readme", ROOT / "docs" / "build_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_benchmark_table_is_the_measured_one():
    assert README == _builder().build(README), "run `make readme`"


def test_readme_is_short_and_names_the_two_commands():
    assert len(README.splitlines()) <= 200   # with the benchmark table
    assert "make run" in README and "make test" in README


def test_every_relative_link_in_readme_and_docs_resolves():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_reference_names_every_contract_route_and_command():
    text = (ROOT / "docs" / "reference.md").read_text() + (ROOT / "docs" / "configuration.md").read_text()
    for needle in ("/api/token/teams", "/api/token/obo/{name}", "/oauth2/token", "/oauth2/introspect",
                   "/oauth2/revoke", "/.well-known/oauth-authorization-server", "TOKENBROKER_CONFIG",
                   "check-config", "keys rotate", "explain"):
        assert needle in text, needle
