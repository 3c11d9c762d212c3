"""A cached verification keeps the principal of the broker's fixed bearer rules; a refusal is
never kept, and a generic call with other rules is still checked against them."""

from __future__ import annotations

import time

import pytest

from emulators.entra import demo
from service.errors import TokenPolicyRefused, TokenScopeMissing
from service.validation import EntraValidator, JwksCache
from tests.validation.conftest import BROKER, entra_settings


@pytest.fixture(name="validator")
async def _validator(entra, session):
    jwks = JwksCache(session, timeout=5)
    yield lambda **overrides: EntraValidator(entra_settings(entra, **overrides), jwks)
    await jwks.close()


def _token(entra, **kw) -> str:
    kw.setdefault("resource", BROKER)
    kw.setdefault("client_id", demo.PUBLIC_CLIENT_ID)
    kw.setdefault("scopes", ["user_impersonation"])
    return entra.mint(**kw)


async def test_the_bearer_principal_is_kept_with_the_cached_verification(entra, validator):
    v = validator()
    token, now = _token(entra), time.time()
    first = await v.validate(token, now=now)
    assert await v.validate(token, now=now + 1) is first
    with pytest.raises(TokenScopeMissing):         # other rules on the same token: checked again
        await v.validate_for(token, now=now, audiences=(BROKER,), required_scopes=("other",), allowed_apps=None)


async def test_a_refusal_is_raised_on_every_call_never_kept(entra, validator):
    v = validator(allowed_tenants=(demo.PARTNER_TENANT_ID,))     # the home tenant is not allowed
    token, now = _token(entra), time.time()
    for _ in range(3):
        with pytest.raises(TokenPolicyRefused):
            await v.validate(token, now=now)


async def test_nothing_kept_is_served_after_the_token_expires(entra, validator):
    v = validator()
    token, now = _token(entra), time.time()
    principal = await v.validate(token, now=now)
    with pytest.raises(Exception) as err:
        await v.validate(token, now=principal.exp + 3600)
    assert getattr(err.value, "reason", "") == "expired"
