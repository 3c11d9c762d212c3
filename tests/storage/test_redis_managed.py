"""Managed Redis (Azure Cache for Redis shape): TLS only, ACL users, passwords from the URL or
`store.password`, and Microsoft Entra ID authentication through redis-entraid against the Entra
emulator. One TLS `redis-server` (certificate from the session CA) for the module.

What the Entra tests prove: the broker obtains a token for `https://redis.azure.com/.default`
(client credentials with its own [entra] secret, or the managed identity endpoint) from the
emulator, AUTHs as `<oid> <token>` and is accepted by an ACL user whose password is exactly
that token, and renews the token on an open connection (AUTH re-sent with the new token).
Real Azure Cache for Redis validates the token itself; here the ACL password stands in for it.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import pytest
from redis.auth.idp import IdentityProviderInterface
from redis.auth.token import TokenInterface

from emulators.entra import demo
from service.app import create_app
from service.downstream.entra_credentials import load_broker_credential
from service.downstream.redis_entra import REDIS_RESOURCE, credential_provider, identity_provider
from service.errors import ConfigurationError
from service.settings import load_settings
from service.storage.redis import RedisStore
from service.typedefs import STORE
from tests.fixtures.entra_emulator import point_managed_identity_at
from tests.support.store_keys import STORE_KEY_LINE
from tests.support.tls_redis import TlsRedis

PASSWORD = "broker-acl-password"


@pytest.fixture(name="tls_redis", scope="module")
def _tls_redis(pki, tmp_path_factory):
    server = TlsRedis(pki, tmp_path_factory.mktemp("redis-tls"), users={"broker": PASSWORD})
    yield server
    server.stop()


@pytest.fixture(name="prefix")
def _prefix(tls_redis):
    prefix = f"managed:{uuid.uuid4().hex}:"
    yield prefix
    with tls_redis.admin() as admin:
        names = list(admin.scan_iter(match=prefix + "*"))
        if names:
            admin.delete(*names)


def config(url: str, ca_bundle: str, extra: str = "") -> str:
    return (f'[server]\npublic_url = "http://broker.test"\n[tls]\nca_bundle = "{ca_bundle}"\n'
            f'[issuer]\nkeys_dir = "keys"\n[store]\nurl = "{url}"\n{STORE_KEY_LINE}\n{extra}')


def entra_toml(entra) -> str:
    return (f'[entra]\nauthority = "{entra.url}"\ntenant_id = "{entra.tenant_id}"\n'
            f'client_id = "{demo.BROKER_CLIENT_ID}"\nclient_secret = "{demo.BROKER_SECRET}"\n')


async def test_the_broker_uses_rediss_with_the_ca_from_tls_and_the_acl_user_of_the_url(
        aiohttp_client, tmp_path, tls_redis, prefix):
    settings = load_settings(config(tls_redis.url("broker", PASSWORD, prefix=prefix), tls_redis.ca),
                             {}, base_dir=tmp_path)
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["checks"]["store"] == "ok"
    await client.app[STORE].put("probe", {"ok": True}, ttl=60)
    with tls_redis.admin() as admin:
        assert admin.exists(f"{prefix}probe")
        assert any(c["user"] == "broker" for c in admin.client_list())


async def test_the_password_may_come_from_tokenbroker_store_password(aiohttp_client, tmp_path, tls_redis, prefix):
    url = tls_redis.url("broker", prefix=prefix)                         # user name only in the URL
    settings = load_settings(config(url, tls_redis.ca), {"TOKENBROKER_STORE__PASSWORD": PASSWORD},
                             base_dir=tmp_path)
    assert PASSWORD not in repr(settings)
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/readyz")).status == 200


async def test_a_wrong_password_or_an_untrusted_certificate_fails_the_start_naming_store_url(
        tmp_path, tls_redis, prefix):
    for url, ca, why in [(tls_redis.url("broker", "wrong", prefix=prefix), tls_redis.ca, "AuthenticationError"),
                         (tls_redis.url("broker", PASSWORD, prefix=prefix), "", "certificate verify failed")]:
        settings = load_settings(config(url, ca), {}, base_dir=tmp_path)
        app = create_app(settings)
        with pytest.raises(ConfigurationError) as failed:
            async with _started(app):
                pass
        [problem] = failed.value.problems
        assert problem.startswith("store.url:") and why in problem and "wrong" not in problem


class _started:
    """Run an app's cleanup contexts (startup only) without serving."""

    def __init__(self, app) -> None:
        self.app = app

    async def __aenter__(self):
        self.app.freeze()
        try:
            await self.app.startup()
        except BaseException:
            await self.app.cleanup()          # the steps that started (the HTTP session)
            raise

    async def __aexit__(self, *exc):
        await self.app.cleanup()


def test_store_settings_refuse_password_with_entra_auth_and_a_redis_store_without_key(tmp_path):
    with pytest.raises(ConfigurationError) as failed:
        load_settings(config("rediss://h:6380/0", "", 'password = "x"\nentra_auth = true\n')
                      .replace(STORE_KEY_LINE, ""), {}, base_dir=tmp_path)
    problems = "\n".join(failed.value.problems)
    assert "store.encryption_key: required" in problems and "store.entra_auth: excludes" in problems
    assert "store.entra_auth: needs" in problems


# --- Microsoft Entra ID ------------------------------------------------------------------------

class RegisteringIdentity(IdentityProviderInterface):
    """The broker's real identity provider; every token it gets is added as a password of the
    ACL user named by the token's `oid` (what Azure does by validating the token)."""

    def __init__(self, inner: IdentityProviderInterface, server: TlsRedis) -> None:
        self.inner = inner
        self.server = server
        self.tokens: list[TokenInterface] = []

    def request_token(self, force_refresh: bool = False) -> TokenInterface:
        token = self.inner.request_token(force_refresh)
        with self.server.admin() as admin:
            admin.acl_setuser(token.try_get("oid"), enabled=True, passwords=[f"+{token.get_value()}"],
                              keys=["*"], commands=["+@all"])
        self.tokens.append(token)
        return token


def _redis_settings(tmp_path, entra, extra: str):
    return load_settings(config("rediss://127.0.0.1:1/0", entra.ca_bundle, "entra_auth = true\n" + extra)
                         + entra_toml(entra), {}, base_dir=tmp_path)


async def test_entra_auth_with_the_broker_credential_gets_a_redis_token_and_authenticates(
        tmp_path, entra, tls_redis, prefix):
    settings = _redis_settings(tmp_path, entra, "")
    idp = identity_provider(settings.store, settings.entra, ca_bundle=entra.ca_bundle,
                            broker=load_broker_credential(settings.entra))
    registering = RegisteringIdentity(idp, tls_redis)
    store = RedisStore(tls_redis.url(prefix=prefix), ca_bundle=tls_redis.ca,
                       credential_provider=credential_provider(registering, refresh_ratio=0.0005))
    try:
        before = tls_redis.auth_stats()
        assert await store.ping(), store.last_error
        await store.put("probe", {"ok": True}, ttl=60)
        first = registering.tokens[0]
        claims = jwt.decode(first.get_value(), options={"verify_signature": False})
        assert claims["aud"] in (REDIS_RESOURCE, demo.REDIS_APP_ID)
        assert claims.get("appid", claims.get("azp")) == demo.BROKER_CLIENT_ID
        [call, *_] = entra.requests(grant_type="client_credentials")
        assert call["client_id"] == demo.BROKER_CLIENT_ID
        with tls_redis.admin() as admin:
            assert any(c["user"] == first.try_get("oid") for c in admin.client_list())

        # renewal (here after ~2 s): only the newest token stays valid, and the open connection
        # is re-authenticated with a token issued after it
        with tls_redis.admin() as admin:
            admin.acl_setuser(first.try_get("oid"), reset_passwords=True, enabled=True,
                              passwords=[f"+{registering.tokens[-1].get_value()}"], keys=["*"], commands=["+@all"])
        seen = len(registering.tokens)
        await _until(lambda: len(registering.tokens) > seen and tls_redis.auth_stats()["calls"] > before["calls"] + 1)
        stats = tls_redis.auth_stats()
        assert stats["failed_calls"] == before["failed_calls"]          # every AUTH was accepted
        assert await store.get("probe") == {"ok": True}
        assert len(entra.requests(grant_type="client_credentials")) >= 2
    finally:
        await store.close()


async def test_entra_auth_with_the_managed_identity_gets_a_redis_token_from_the_msi_endpoint(
        tmp_path, entra, tls_redis, prefix, monkeypatch):
    point_managed_identity_at(entra, monkeypatch)
    settings = _redis_settings(tmp_path, entra, "managed_identity = true\n")
    registering = RegisteringIdentity(identity_provider(settings.store, None, ca_bundle=entra.ca_bundle,
                                                        broker=None), tls_redis)
    store = RedisStore(tls_redis.url(prefix=prefix), ca_bundle=tls_redis.ca,
                       credential_provider=credential_provider(registering))
    try:
        assert await store.ping(), store.last_error
        [token] = registering.tokens[:1]
        claims = jwt.decode(token.get_value(), options={"verify_signature": False})
        assert claims["aud"] == REDIS_RESOURCE and claims["appid"] == demo.MANAGED_IDENTITY_CLIENT_ID
        assert entra.requests(path="/msi/token")
    finally:
        await store.close()


async def test_the_app_with_entra_auth_asks_entra_for_redis_and_authenticates_as_its_oid(
        tmp_path, entra, tls_redis, prefix):
    """The whole wiring (settings → app → redis-entraid → emulator → Redis): the token the app
    gets is not registered here, so Redis refuses it — and the refusal names the broker's oid."""
    settings = load_settings(config(tls_redis.url(prefix=prefix), entra.ca_bundle, "entra_auth = true\n")
                             .replace(f'ca_bundle = "{entra.ca_bundle}"', f'ca_bundle = "{tls_redis.ca}"')
                             + entra_toml(entra), {}, base_dir=tmp_path)
    with tls_redis.admin() as admin:
        admin.acl_log_reset()
    with pytest.raises(ConfigurationError) as failed:
        async with _started(create_app(settings)):
            pass
    assert "AuthenticationError" in failed.value.problems[0]
    calls = entra.requests(grant_type="client_credentials")
    assert calls and all(c["client_id"] == demo.BROKER_CLIENT_ID and c["scope"] == f"{REDIS_RESOURCE}/.default"
                         for c in calls)
    with tls_redis.admin() as admin:
        users = {entry["username"] for entry in admin.acl_log()}
    app_token = entra.mint(resource=REDIS_RESOURCE, client_id=demo.BROKER_CLIENT_ID, app_only=True)
    broker_oid = jwt.decode(app_token, options={"verify_signature": False})["oid"]
    assert users == {broker_oid}                                         # AUTH <the broker's oid> <token>


async def _until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
