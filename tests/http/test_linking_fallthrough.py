"""`link_by_attribute` without a matching local account, through POST /oauth2/token.

Like Asgardeo, the exchange goes on with the external subject unless the trusted issuer sets
`mandate_linked = true` (then 400 invalid_request). A match still links and wins.
"""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from service.app import create_app
from service.grants.linking import Accounts
from service.grants.subject_tokens import Subject
from service.settings import load_settings_file
from service.typedefs import STORE
from tests.http.test_account_linking import TOML as BASE_TOML
from tests.http.test_account_linking import claims_of, exchange, idp, idp_token, write_config

STRICT = idp("strict", "link_by_attribute", '["email"]') + "mandate_linked = true\n"
# test_account_linking's config ("partner": link_by_attribute on email, then employee_id), plus "strict"
TOML = BASE_TOML.replace("[[clients]]", STRICT + "\n[[clients]]").replace(
    '"partner", "self"]', '"partner", "strict", "self"]')


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(load_settings_file(write_config(tmp_path, TOML), {})))


def external_sub(issuer: str, sub: str) -> str:
    """The `sub` the broker gives an unlinked external subject (the same as `linking = "none"`)."""
    return Subject(issuer, f"https://{issuer}.example", sub, frozenset(), 0, {}).local_id()


async def test_no_match_goes_on_with_the_external_subject(client):
    with capture_logs() as logs:
        status, body = await exchange(client, idp_token("partner", "ext-42", email="new@partner.example",
                                                        email_verified=True, employee_id="E-9"))
    assert status == 200, body
    assert claims_of(body)["sub"] == external_sub("partner", "ext-42")
    assert await Accounts(client.app[STORE]).list() == []          # nothing created, nothing linked
    [event] = [e for e in logs if e.get("event") == "account.unmatched"]
    assert (event["issuer"], event["outcome"]) == ("partner", "external_subject")
    assert "ext-42" not in str(event)


async def test_a_secondary_attribute_match_still_links(client):
    account = await Accounts(client.app[STORE]).create({"employee_id": "E-7"})
    status, body = await exchange(client, idp_token("partner", "ext-7", employee_id="E-7"))
    assert status == 200, body
    assert claims_of(body)["sub"] == account.id
    assert await Accounts(client.app[STORE]).linked("partner", "ext-7") == account.id


async def test_mandate_linked_refuses_a_subject_without_an_account(client):
    status, body = await exchange(client, idp_token("strict", "ext-1", email="x@strict.example",
                                                    email_verified=True))
    assert (status, body["error"]) == (400, "invalid_request")
    account = await Accounts(client.app[STORE]).create({"email": "x@strict.example"})
    status, body = await exchange(client, idp_token("strict", "ext-1", email="x@strict.example",
                                                    email_verified=True))
    assert status == 200 and claims_of(body)["sub"] == account.id
