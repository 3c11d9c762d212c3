"""`validate_for`: the generic variant (e.g. Teams tokens for ACS) and the verified-token cache."""

from __future__ import annotations

import time

import pytest

from emulators.entra import demo
from service.errors import TokenInvalid, TokenPolicyRefused, TokenScopeMissing
from service.metrics import Metrics
from service.validation import EntraValidator, JwksCache
from tests.validation.conftest import entra_settings

TEAMS = ("Teams.ManageCalls", "Teams.ManageChats")
ACS_AUDIENCES = (demo.ACS_APP_ID, demo.ACS_APP_ID_URI)


@pytest.fixture(name="metrics")
def _metrics() -> Metrics:
    return Metrics()


@pytest.fixture(name="validator")
def _validator(entra, session, metrics) -> EntraValidator:
    return EntraValidator(entra_settings(entra), JwksCache(session, timeout=5, metrics=metrics),
                          metrics=metrics, cache_size=3)


def teams_token(entra, **kw) -> str:
    kw.setdefault("scopes", list(TEAMS))
    return entra.mint(resource=demo.ACS_APP_ID_URI, client_id=demo.CLIENT_ID, version=1, **kw)


async def teams(validator, token, **kw):
    kw.setdefault("allowed_apps", (demo.CLIENT_ID,))
    return await validator.validate_for(token, now=time.time(), audiences=ACS_AUDIENCES,
                                        required_scopes=TEAMS, **kw)


async def test_a_teams_token_passes_the_teams_rules_but_not_the_broker_rules(validator, entra):
    token = teams_token(entra)
    principal = await teams(validator, token)
    assert principal.version == "1.0" and principal.app_id == demo.CLIENT_ID
    assert principal.scopes >= set(TEAMS) and principal.oid == demo.ALICE_OID
    with pytest.raises(TokenInvalid) as info:  # cached as verified, yet the broker audience is refused
        await validator.validate(token, now=time.time())
    assert info.value.reason == "audience"


async def test_teams_scopes_and_apps_are_enforced(validator, entra):
    with pytest.raises(TokenScopeMissing) as info:
        await teams(validator, teams_token(entra, scopes=["Teams.ManageCalls"]))
    assert info.value.missing == ("Teams.ManageChats",)
    with pytest.raises(TokenPolicyRefused) as refused:
        await teams(validator, teams_token(entra), allowed_apps=(demo.PUBLIC_CLIENT_ID,))
    assert refused.value.reason == "client_app"
    assert (await teams(validator, teams_token(entra), allowed_apps=None)).app_id == demo.CLIENT_ID


async def test_without_the_signature_check_the_claim_checks_still_run(validator, entra):
    token = teams_token(entra)
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-8]}AAAAAAAA"
    with pytest.raises(TokenInvalid) as info:
        await teams(validator, forged)
    assert info.value.reason == "signature"
    assert (await teams(validator, forged, verify_signature=False)).oid == demo.ALICE_OID
    for claims in ({"iss": "https://sts.windows.net/evil/"}, {"exp": int(time.time()) - 3600},
                   {"aud": demo.BROKER_CLIENT_ID}):
        with pytest.raises(TokenInvalid):
            await teams(validator, teams_token(entra, claims=claims), verify_signature=False)


async def test_the_verified_token_cache_is_bounded(validator, entra, metrics):
    tokens = [teams_token(entra) for _ in range(5)]
    for token in tokens:
        await teams(validator, token)
    sample = metrics.registry.get_sample_value
    assert sample("tokenbroker_cache_events_total", {"cache": "entra_tokens", "event": "evicted"}) == 2
    await teams(validator, tokens[-1])
    assert sample("tokenbroker_cache_events_total", {"cache": "entra_tokens", "event": "hit"}) == 1
    await teams(validator, tokens[0])  # evicted: verified again
    assert sample("tokenbroker_cache_events_total", {"cache": "entra_tokens", "event": "miss"}) == 6
