"""Account linking below HTTP: the accounts repository on real stores (memory and SQLite), the
linking modes of `AccountLinker`, which claims may find an account, and the [entra] linking keys."""

from __future__ import annotations

import asyncio

import pytest

from service.errors import ConfigurationError, InvalidRequest
from service.grants.linking import AccountConflict, AccountLinker, Accounts, lookup_value, profile
from service.grants.subject_tokens import Subject
from service.settings import load_settings
from service.storage import open_store

SECRET = "partner-hmac-secret-of-at-least-32-bytes!"
TID = "32f56351-9165-4d79-9c8b-af73271abdc0"
OID = "7534753f-9276-449b-9488-06090584adce"


async def resolve(linker: AccountLinker, subj: Subject, events: list | None = None):
    """The linker's answer; what it did goes to `events` (the HTTP layer audits those)."""
    return await linker.resolve(subj, events=[] if events is None else events)


def issuer_toml(name: str, linking: str, lookup: list[str] | None = None) -> str:
    return f"""
[[trusted_issuers]]
name = "{name}"
issuer = "https://{name}.example"
secret = "{SECRET}"
audiences = ["https://broker.example"]
algorithms = ["HS256"]
linking = "{linking}"
lookup_attributes = {lookup or []!r}
""".replace("'", '"')


ENTRA = f"""
[entra]
tenant_id = "{TID}"
client_id = "broker"
linking = "link_by_attribute"
lookup_attributes = ["oid"]
"""


@pytest.fixture(name="settings")
def _settings(tmp_path):
    toml = (issuer_toml("jit", "jit") + issuer_toml("strict", "require_linked")
            + issuer_toml("attr", "link_by_attribute", ["email", "employee_id"]) + issuer_toml("plain", "none")
            + ENTRA)
    return load_settings(toml, {}, base_dir=tmp_path)


@pytest.fixture(name="store", params=["memory", "sqlite"])
async def _store(request, tmp_path):
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/state.db"
    store = open_store(url, dev=True)
    yield store
    await store.close()


def subject(issuer: str, sub: str, **claims) -> Subject:
    return Subject(issuer, f"https://{issuer}.example", sub, frozenset({"read"}), 2_000_000_000,
                   {"sub": sub, **claims})


def entra_subject(tid: str = TID, oid: str = OID, **claims) -> Subject:
    return Subject("entra", f"https://sts.windows.net/{tid}/", f"{tid}/{oid}", frozenset(), 2_000_000_000,
                   {"tid": tid, "oid": oid, **claims}, tid=tid, oid=oid)


async def test_jit_creates_one_account_per_identity_and_reuses_it(settings, store):
    linker = AccountLinker(settings, Accounts(store))
    events: list = []
    first = await resolve(linker, subject("jit", "u1", name="Ursula", email="u@x.example", email_verified=True), events)
    second = await resolve(linker, subject("jit", "u1", name="Changed"))
    other = await resolve(linker, subject("jit", "u2"))
    assert first is not None and second is not None and other is not None
    assert first.id == second.id != other.id
    assert second.attributes == {"name": "Ursula", "email": "u@x.example"}    # the account's, not the token's
    assert [name for name, _ in events] == ["account.created", "account.linked"]   # audited by http/audit
    assert all("u1" not in str(fields.get("subject")) for _, fields in events)        # subjects are hashed


async def test_jit_never_stores_an_unverified_email(settings, store):
    linker = AccountLinker(settings, Accounts(store))
    account = await resolve(linker, subject("jit", "u3", email="victim@x.example", email_verified=False))
    assert account is not None and "email" not in account.attributes
    assert await Accounts(store).by_attribute("email", "victim@x.example") is None


async def test_require_linked_refuses_an_unlinked_subject_and_accepts_a_linked_one(settings, store):
    accounts = Accounts(store)
    linker = AccountLinker(settings, accounts)
    with pytest.raises(InvalidRequest) as refused:
        await resolve(linker, subject("strict", "s1"))
    assert refused.value.reason == "account_not_linked"
    made = await accounts.create({"name": "Sam"})
    assert await accounts.link(made.id, "strict", "s1") == made.id
    found = await resolve(linker, subject("strict", "s1"))
    assert found is not None and found.id == made.id and found.links == (("strict", "s1"),)


async def test_link_by_attribute_tries_the_primary_then_the_secondary_attribute(settings, store):
    accounts = Accounts(store)
    linker = AccountLinker(settings, accounts)
    by_email = await accounts.create({"email": "Ann@X.example"})
    by_number = await accounts.create({"employee_id": "E-42"})
    a = await resolve(linker, subject("attr", "ann", email="ann@x.example", email_verified=True))
    b = await resolve(linker, subject("attr", "bo", email="bo@x.example", email_verified=True, employee_id="E-42"))
    assert a is not None and a.id == by_email.id          # case-insensitive match on the primary
    assert b is not None and b.id == by_number.id         # primary missed, secondary found
    assert await accounts.linked("attr", "bo") == by_number.id   # the link is remembered


async def test_link_by_attribute_never_uses_an_unverified_email(settings, store):
    accounts = Accounts(store)
    await accounts.create({"email": "boss@x.example"})
    linker = AccountLinker(settings, accounts)
    for claims in ({"email": "boss@x.example"}, {"email": "boss@x.example", "email_verified": "true"}):
        # no match: the external subject goes on unlinked (mandate_linked is off)
        assert await resolve(linker, subject("attr", "mallory", **claims)) is None
    assert await accounts.linked("attr", "mallory") is None


async def test_linking_none_keeps_the_derived_subject(settings, store):
    assert await resolve(AccountLinker(settings, Accounts(store)), subject("plain", "p1")) is None


async def test_entra_links_by_oid_only(settings, store):
    accounts = Accounts(store)
    made = await accounts.create({"oid": OID, "email": "alice@contoso.example"})
    linker = AccountLinker(settings, accounts)
    found = await resolve(linker, entra_subject())
    assert found is not None and found.id == made.id
    assert await accounts.linked("entra", f"{TID}/{OID}") == made.id
    assert lookup_value("entra", {"email": "alice@contoso.example", "email_verified": True}, "email") is None


def test_entra_profiles_keep_display_names_but_index_only_the_oid():
    attrs, index = profile("entra", {"name": "Alice", "email": "a@x.example", "preferred_username": "a@x"},
                           tid=TID, oid=OID)
    assert attrs == {"name": "Alice", "preferred_username": "a@x", "tid": TID, "oid": OID}
    assert index == ("oid",)


async def test_attribute_values_belong_to_one_account(store):
    accounts = Accounts(store)
    await accounts.create({"email": "one@x.example", "name": "One"})
    with pytest.raises(AccountConflict):
        await accounts.create({"name": "Two", "email": "ONE@x.example"})
    assert [a.attributes["name"] for a in await accounts.list()] == ["One"]
    assert await accounts.by_attribute("name", "Two") is None    # the refused account left no index


async def test_a_link_belongs_to_one_account_and_unlink_removes_it(store):
    accounts = Accounts(store)
    a, b = await accounts.create({"name": "A"}), await accounts.create({"name": "B"})
    assert await accounts.link(a.id, "jit", "x") == a.id
    assert await accounts.link(b.id, "jit", "x") == a.id       # already held: the holder is returned
    assert await accounts.unlink("jit", "x") == a.id
    assert await accounts.unlink("jit", "x") is None
    assert (await accounts.get(a.id)).links == ()
    with pytest.raises(KeyError):
        await accounts.link("no-such-account", "jit", "y")


@pytest.mark.parametrize(("toml", "key"), [
    (ENTRA.replace('["oid"]', '["email"]'), "entra.lookup_attributes:"),
    (ENTRA.replace('["oid"]', "[]"), "entra.lookup_attributes:"),
    (ENTRA.replace('"link_by_attribute"', '"email"'), "entra.linking:"),
])
def test_entra_linking_settings_are_checked(tmp_path, toml, key):
    with pytest.raises(ConfigurationError) as err:
        load_settings(toml, {}, base_dir=tmp_path)
    assert any(p.startswith(key) for p in err.value.problems), err.value.problems


def test_entra_linking_can_be_set_from_the_environment(tmp_path):
    s = load_settings(ENTRA, {"TOKENBROKER_ENTRA__LINKING": "jit"}, base_dir=tmp_path)
    assert s.entra.linking == "jit" and s.entra.lookup_attributes == ("oid",)


async def test_concurrent_first_exchanges_of_one_identity_end_with_one_account(settings, store):
    linkers = [AccountLinker(settings, Accounts(store)) for _ in range(5)]
    found = await asyncio.gather(*(resolve(lk, subject("jit", "racer", name="R")) for lk in linkers))
    assert len({a.id for a in found}) == 1
    assert [a.id for a in await Accounts(store).list()] == [found[0].id]
