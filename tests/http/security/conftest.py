"""The adversarial tests' `client`: the broker of tests/support/security_broker.py (overrides tests/http's)."""

from __future__ import annotations

import pytest

from service.app import create_app
from tests.support.security_broker import security_settings


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(security_settings(tmp_path)))
