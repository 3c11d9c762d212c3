"""Teams tokens (v1, for ACS) of several tenants, against the strict Entra emulator and ACS."""

from __future__ import annotations

from emulators.entra import demo
from tests.acs.conftest import claims

BOTH = {"allowed_tenants": [demo.TENANT_ID, demo.PARTNER_TENANT_ID]}


def carol(tokens, tenant: str = demo.PARTNER_TENANT_ID) -> dict[str, str]:
    return tokens.headers(bearer=tokens.bearer(user=demo.CAROL_UPN, tenant=tenant),
                          teams=tokens.teams(user=demo.CAROL_UPN, tenant=tenant))


async def test_a_second_allowed_tenants_teams_user_gets_an_acs_token(broker_for, tokens, acs):
    broker = await broker_for(entra_extra=BOTH)
    resp = await broker.get("/api/token/teams", headers=carol(tokens))
    body = await resp.json()
    assert resp.status == 201, body
    check = acs.check_token(body["token"])
    assert check["valid"] and check["skypeid"] == f"orgid:{demo.CAROL_OID}"
    [call] = acs.requests(operation="get_token_for_teams_user")
    assert call["status"] == 200 and call["tid"] == demo.PARTNER_TENANT_ID


async def test_the_teams_token_of_a_tenant_not_allowed_is_refused_with_403(broker_for, tokens, acs):
    broker = await broker_for(entra_extra=BOTH)
    dave = tokens.headers(bearer=tokens.bearer(user=demo.DAVE_UPN, tenant=demo.OTHER_TENANT_ID),
                          teams=tokens.teams(user=demo.DAVE_UPN, tenant=demo.OTHER_TENANT_ID))
    resp = await broker.get("/api/token/teams", headers=dave)
    assert resp.status == 403          # the bearer token of that tenant is refused first
    assert (await resp.json())["error"] == "access_denied"
    home_bearer = tokens.headers(teams=tokens.teams(user=demo.DAVE_UPN, tenant=demo.OTHER_TENANT_ID))
    resp = await broker.get("/api/token/teams", headers=home_bearer)
    body = await resp.json()
    assert (resp.status, body["error"]) == (403, "invalid_teams_token"), body
    assert acs.requests() == []


async def test_home_only_refuses_a_partner_teams_token_with_403_not_400(broker, tokens, acs):
    """Home tenant only: the partner's v1 Teams token is refused for its tenant (403), before
    the key check; the bearer token is the home user's."""
    headers = tokens.headers(teams=tokens.teams(user=demo.CAROL_UPN, tenant=demo.PARTNER_TENANT_ID))
    resp = await broker.get("/api/token/teams", headers=headers)
    body = await resp.json()
    assert (resp.status, body["error"]) == (403, "invalid_teams_token"), body
    assert claims(headers["teams-user-aad-token"])["ver"] == "1.0"
    assert acs.requests() == []
