"""The ACS emulator's identity operations through the real azure-communication-identity clients."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from azure.communication.identity import CommunicationTokenScope, CommunicationUserIdentifier
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

ID_RE = re.compile(r"^8:acs:[0-9a-f-]{36}_[0-9a-f-]{36}$")
EXPIRES_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00$")


def _expiry(token) -> dt.datetime:
    assert EXPIRES_RE.match(token.expires_on), token.expires_on
    return dt.datetime.fromisoformat(token.expires_on)


async def test_create_user_returns_an_acs_identity_known_to_the_emulator(acs, acs_client):
    user = await acs_client("create_user")
    assert ID_RE.match(user.raw_id)
    assert acs.config.resource_id in user.raw_id
    assert user.raw_id in acs.identities()
    [entry] = acs.requests(operation="create_user")
    assert entry["status"] == 201 and entry["auth"] == "hmac" and entry["method"] == "POST"
    assert entry["client_request_id"]


async def test_create_user_and_token_honours_the_requested_lifetime(acs, acs_client):
    before = dt.datetime.now(dt.UTC)
    user, token = await acs_client("create_user_and_token", [CommunicationTokenScope.CHAT, "voip"],
                                   token_expires_in=dt.timedelta(minutes=90))
    assert ID_RE.match(user.raw_id)
    lifetime = _expiry(token) - before
    assert dt.timedelta(minutes=89) < lifetime <= dt.timedelta(minutes=91)
    check = acs.check_token(token.token)
    assert check["valid"] and check["acsScope"] == "chat,voip"
    assert check["skypeid"] == user.raw_id.removeprefix("8:")
    assert acs.requests(operation="create_user_and_token")[0]["status"] == 201


async def test_get_token_defaults_to_one_day(acs, acs_client):
    user = await acs_client("create_user")
    before = dt.datetime.now(dt.UTC)
    token = await acs_client("get_token", user, ["voip"])
    lifetime = _expiry(token) - before
    assert dt.timedelta(hours=23, minutes=59) < lifetime <= dt.timedelta(hours=24, minutes=1)
    assert acs.check_token(token.token)["valid"]
    assert acs.requests(operation="get_token")[0]["status"] == 200


async def test_revoke_tokens_invalidates_tokens_issued_before(acs, acs_client):
    user = await acs_client("create_user")
    old = await acs_client("get_token", user, ["chat"])
    assert await acs_client("revoke_tokens", user) is None
    old_check = acs.check_token(old.token)
    assert (old_check["valid"], old_check["reason"]) == (False, "revoked")
    new = await acs_client("get_token", user, ["chat"])
    assert acs.check_token(new.token)["valid"]
    assert acs.requests(operation="revoke_tokens")[0]["status"] == 204


async def test_delete_user_removes_the_identity_and_a_second_delete_is_not_found(acs, acs_client):
    user = await acs_client("create_user")
    token = await acs_client("get_token", user, ["chat"])
    await acs_client("delete_user", user)
    assert user.raw_id not in acs.identities()
    assert acs.check_token(token.token)["reason"] == "identity_deleted"
    with pytest.raises(ResourceNotFoundError) as err:
        await acs_client("delete_user", user)
    assert err.value.error.code == "IdentityNotFound"
    assert [e["status"] for e in acs.requests(operation="delete_user")] == [204, 404]


async def test_tokens_for_an_unknown_identity_are_not_found(acs, acs_client):
    ghost = CommunicationUserIdentifier(f"8:acs:{acs.config.resource_id}_00000000-0000-0000-0000-000000000000")
    with pytest.raises(ResourceNotFoundError) as err:
        await acs_client("get_token", ghost, ["chat"])
    assert err.value.error.code == "IdentityNotFound"
    with pytest.raises(ResourceNotFoundError):
        await acs_client("revoke_tokens", ghost)


@pytest.mark.parametrize("minutes", [59, 1441])
async def test_a_token_lifetime_outside_one_hour_to_one_day_is_a_bad_request(acs, acs_client, minutes):
    user = await acs_client("create_user")
    with pytest.raises(HttpResponseError) as err:
        await acs_client("get_token", user, ["chat"], token_expires_in=dt.timedelta(minutes=minutes))
    assert err.value.status_code == 400
    assert err.value.error.code == "ValidationError"
    with pytest.raises(HttpResponseError) as err:
        await acs_client("create_user_and_token", ["chat"], token_expires_in=dt.timedelta(minutes=minutes))
    assert err.value.status_code == 400


async def test_an_unknown_scope_is_a_bad_request(acs, acs_client):
    user = await acs_client("create_user")
    with pytest.raises(HttpResponseError) as err:
        await acs_client("get_token", user, ["admin"])
    assert (err.value.status_code, err.value.error.code) == (400, "ValidationError")
