"""Shared fixtures. Feature fixtures live in tests/fixtures/ and are registered here."""

from __future__ import annotations

import pytest

from emulators.pki import Pki, ensure_pki

pytest_plugins = [
    "tests.support.log_hygiene",       # first: fails the session if a captured line holds a token or secret
    "tests.fixtures.entra_emulator",
    "tests.fixtures.acs_emulator",
    "tests.fixtures.serve_processes",
]


@pytest.fixture(name="pki", scope="session")
def _pki(tmp_path_factory) -> Pki:
    """One generated CA and server certificate for every HTTPS emulator in the session."""
    return ensure_pki(tmp_path_factory.mktemp("pki"))
