"""Fixtures shared by the token-endpoint tests: `client`, the app built from token_support's
BASE_TOML (a module that needs another config defines its own `client`, which takes precedence),
and `clock`, an app clock a test can move forward (`clock.now += 60`)."""

from __future__ import annotations

import time

import pytest

from service.app import create_app
from tests.http.token_support import make_settings


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(make_settings(tmp_path)))


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(name="clock")
def _clock() -> Clock:
    return Clock()
