"""A request body that does not arrive within `server.body_timeout` gets a 408 JSON answer and
the connection is closed (issue 14, finding 6). Raw sockets against the real app on a port."""

from __future__ import annotations

import asyncio
import json

import pytest

from service.app import create_app
from tests.http.token_support import BASE_TOML, make_settings

HEAD = (b"POST /oauth2/token HTTP/1.1\r\nHost: broker\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 200\r\n\r\ngrant_type=refresh_token")


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path):
    toml = BASE_TOML.replace("[server]\n", "[server]\nbody_timeout = 1\n")
    return await aiohttp_client(create_app(make_settings(tmp_path, base=toml)))


async def test_a_stalled_body_gets_408_json_and_the_connection_is_closed(client):
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(HEAD)                                 # 24 of the 200 announced bytes, then nothing
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=30)   # read() returns at the server's close
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"] == "invalid_request"


async def test_a_body_that_arrives_in_time_is_read_normally(client):
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    body = b"grant_type=refresh_token&refresh_token=x"
    writer.write(HEAD.replace(b"200", str(len(body)).encode()).replace(b"grant_type=refresh_token", body))
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=30)
    writer.close()
    assert status_line.split()[1] == b"401"            # read, parsed, and refused for lack of a client


def test_body_timeout_must_be_at_least_one_second(tmp_path):
    from service.errors import ConfigurationError
    with pytest.raises(ConfigurationError) as refused:
        make_settings(tmp_path, base=BASE_TOML.replace("[server]\n", "[server]\nbody_timeout = 0\n"))
    assert any("server.body_timeout" in p for p in refused.value.problems)
