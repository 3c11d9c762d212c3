"""The `client` fixture shared by the token-endpoint tests: the app built from token_support's
BASE_TOML (a module that needs another config defines its own `client`, which takes precedence)."""

from __future__ import annotations

import pytest

from service.app import create_app
from tests.http.token_support import make_settings


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(make_settings(tmp_path)))
