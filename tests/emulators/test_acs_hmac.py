"""HMAC-SHA256 verification and protocol checks of the ACS emulator.

The real SDK proves that good signatures pass; a small independent signer written here from
notes/acs.md §2 lets the tests send exactly the broken requests the SDK never sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from email.utils import formatdate

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError

from tests.fixtures.acs_emulator import aio_client, start_acs, sync_client

API = "api-version=2023-10-01"


def signed_headers(key: str, method: str, path_and_query: str, host: str, body: bytes,
                   *, date: str | None = None) -> dict[str, str]:
    date = date or formatdate(usegmt=True)
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    sts = f"{method}\n{path_and_query}\n{date};{host};{digest}"
    sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
    return {"x-ms-date": date, "x-ms-content-sha256": digest, "Content-Type": "application/json",
            "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}"}


def _host(acs) -> str:
    return acs.url.split("://", 1)[1]


async def _post(acs_http, acs, path: str, body: bytes, headers: dict[str, str]):
    async with acs_http.post(f"{acs.url}{path}", data=body, headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers


async def test_a_compact_json_body_signed_like_the_js_sdk_is_accepted(acs, acs_http):
    body = b'{"createTokenWithScopes":["chat"],"expiresInMinutes":60}'
    headers = signed_headers(acs.access_key, "POST", f"/identities?{API}", _host(acs), body)
    headers["x-ms-client-request-id"] = "req-123"
    headers["x-ms-return-client-request-id"] = "true"
    status, data, resp_headers = await _post(acs_http, acs, f"/identities?{API}", body, headers)
    assert status == 201 and data["accessToken"]["token"]
    assert resp_headers["x-ms-client-request-id"] == "req-123"
    assert acs.requests(client_request_id="req-123")[0]["operation"] == "create_user_and_token"


@pytest.mark.parametrize("breakage", ["body", "path", "host", "signed_headers", "stale_date", "no_auth",
                                      "not_hmac"])
async def test_a_request_not_signed_as_sent_is_denied(acs, acs_http, breakage):
    body, path = b'{"createTokenWithScopes":["chat"]}', f"/identities?{API}"
    date = formatdate(time.time() - 20 * 60, usegmt=True) if breakage == "stale_date" else None
    headers = signed_headers(acs.access_key, "POST", "/identities?api-version=2022-10-01" if breakage == "path"
                             else path, "evil.example:443" if breakage == "host" else _host(acs), body, date=date)
    if breakage == "body":
        body = b'{"createTokenWithScopes":["voip"]}'
    if breakage == "signed_headers":
        headers["Authorization"] = headers["Authorization"].replace("x-ms-date;host;", "host;x-ms-date;")
    if breakage == "no_auth":
        del headers["Authorization"]
    if breakage == "not_hmac":
        headers["Authorization"] = "SharedKey " + acs.access_key
    status, data, _ = await _post(acs_http, acs, path, body, headers)
    assert status == 401
    assert data["error"]["code"] == "Denied" and data["error"]["message"]
    assert acs.requests()[-1]["status"] == 401


@pytest.mark.parametrize("kind", ["sync", "aio"])
async def test_a_wrong_access_key_raises_client_authentication_error(acs, acs_http, kind):
    wrong = AzureKeyCredential(base64.b64encode(b"not-the-key").decode())
    with pytest.raises(ClientAuthenticationError) as err:
        if kind == "sync":
            sync_client(acs, wrong).create_user()
        else:
            async with aio_client(acs, acs_http, wrong) as client:
                await client.create_user()
    assert err.value.status_code == 401 and err.value.error.code == "Denied"


def test_a_trailing_slash_in_the_endpoint_signs_another_host_and_is_denied(acs):
    client = CommunicationIdentityClient(acs.url + "/", AzureKeyCredential(acs.access_key),
                                         connection_verify=acs.ca_bundle, retry_total=0)
    with pytest.raises(ClientAuthenticationError):
        client.create_user()


@pytest.mark.parametrize("offset, ok", [(10 * 60, True), (20 * 60, False), (-20 * 60, False)])
def test_the_date_window_is_fifteen_minutes_of_the_emulator_clock(pki, offset, ok):
    skewed = start_acs(pki, clock=lambda: time.time() + offset)
    try:
        client = sync_client(skewed)
        if ok:
            assert client.create_user().raw_id.startswith("8:acs:")
        else:
            with pytest.raises(ClientAuthenticationError):
                client.create_user()
    finally:
        skewed.stop()


@pytest.mark.parametrize("query, code", [("", "MissingApiVersionParameter"),
                                         ("?api-version=1999-01-01", "UnsupportedApiVersion")])
async def test_a_missing_or_unknown_api_version_is_a_bad_request(acs, acs_http, query, code):
    headers = signed_headers(acs.access_key, "POST", f"/identities{query}", _host(acs), b"")
    status, data, _ = await _post(acs_http, acs, f"/identities{query}", b"", headers)
    assert (status, data["error"]["code"]) == (400, code)


async def test_unknown_routes_and_methods_answer_json_errors(acs, acs_http):
    async with acs_http.get(f"{acs.url}/nowhere?{API}") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "NotFound"
    async with acs_http.get(f"{acs.url}/identities?{API}") as resp:
        assert resp.status == 405
        assert (await resp.json())["error"]["code"] == "MethodNotAllowed"
    assert [e["status"] for e in acs.requests()] == [404, 405]


async def test_a_malformed_json_body_is_a_bad_request(acs, acs_http):
    body = b'{"scopes": ["chat"'
    path = f"/identities/8:acs:{acs.config.resource_id}_x/:issueAccessToken?{API}"
    status, data, _ = await _post(acs_http, acs, path, body, signed_headers(acs.access_key, "POST", path,
                                                                            _host(acs), body))
    assert (status, data["error"]["code"]) == (400, "InvalidRequestBody")
