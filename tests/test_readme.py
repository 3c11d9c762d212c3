"""README.md is built from docs/ and must not drift from it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _builder():
    spec = importlib.util.spec_from_file_location("build_readme", ROOT / "docs" / "build_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_up_to_date_with_docs():
    assert (ROOT / "README.md").read_text() == _builder().build(), "run `make readme`"


def test_readme_names_the_two_commands_and_every_contract_route():
    text = (ROOT / "README.md").read_text()
    for needle in ("make run", "make test", "/api/token/teams", "/api/token/obo/{name}", "/oauth2/token",
                   "/oauth2/introspect", "/oauth2/revoke", "/.well-known/oauth-authorization-server",
                   "TOKENBROKER_CONFIG", "check-config", "keys rotate", "explain"):
        assert needle in text, needle
