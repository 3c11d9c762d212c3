"""Local accounts linked to external identities (account linking, as in Asgardeo).

Keys on the `Store` (no TTL; the `link:` and `attr:` keys are the source of truth, the
account's `links` list is a convenience for `tokenbroker accounts show`):

    account:<id>                    {"id", "attributes": {name: value}, "links": [{"issuer", "subject"}]}
    link:<issuer name>:<subject>    {"account": id}   subject = the token's `sub`; "tid/oid" for entra
    attr:<name>:<value>             {"account": id}   value stripped and case-folded

Modes, per `[[trusted_issuers]].linking` and `[entra].linking` (`AccountLinker.resolve`):

    none               no account: `sub` is the derived local id (the core's behaviour)
    jit                a link wins; else a new account (UUIDv4) is created and linked
    require_linked     a link wins; else 400 invalid_request (reason account_not_linked)
    link_by_attribute  a link wins; else the first `lookup_attributes` value that finds an
                       account links it; else, like Asgardeo, the exchange goes on with the
                       external subject (the same `sub` as with `none`), unless the trusted
                       issuer sets `mandate_linked = true`: then 400 invalid_request (reason
                       account_no_match). Entra (`[entra] linking`) always mandates the link.

Lookups use only claims the issuer vouches for: `email` only with `email_verified: true`,
`phone_number` only with `phone_number_verified: true`; other claims named in
`lookup_attributes` are taken as signed. For Entra only `oid` may be a lookup attribute
(settings enforce it): Entra's `email`, `upn` and `preferred_username` are mutable and
unverified, so they are stored for display but never used to find an account.

Our own tokens (`self`) keep their `sub`; when it is an account id, the account's
attributes are added to the new token as well.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from service.digest import short_hash
from service.errors import InvalidRequest
from service.grants.policy import ENTRA, SELF
from service.settings import Settings
from service.storage.base import Store, make_key

if TYPE_CHECKING:   # subject_tokens.py is above this module in the grants
    from service.grants.subject_tokens import Subject

ACCOUNT, LINK, ATTR = "account", "link", "attr"
#: account attributes copied into issued tokens (preferred over anything else)
TOKEN_CLAIMS = ("name", "given_name", "family_name", "email", "preferred_username")
#: claims that count only when the issuer says it verified them
VERIFIED_BY = {"email": "email_verified", "phone_number": "phone_number_verified"}
ENTRA_LOOKUP_ATTRIBUTES = ("oid",)
_PROFILE = (*TOKEN_CLAIMS, "phone_number")


class AccountConflict(ValueError):
    """An attribute value or an external identity already belongs to another account."""


def normalise(value: str) -> str:
    return value.strip().casefold()


@dataclass(frozen=True)
class Account:
    id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()

    def token_claims(self) -> dict[str, str]:
        return {k: self.attributes[k] for k in TOKEN_CLAIMS if self.attributes.get(k)}

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "attributes": dict(self.attributes),
                "links": [{"issuer": i, "subject": s} for i, s in self.links]}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Account:
        return cls(value["id"], dict(value.get("attributes") or {}),
                   tuple((x["issuer"], x["subject"]) for x in value.get("links") or ()))


AuditEvents = list[tuple[str, dict[str, Any]]]


def link_event(event: str, account_id: str, issuer: str, subject: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    """An account.* audit event (the external subject only as a hash)."""
    return event, {"account": account_id, "issuer": issuer, "subject": short_hash(f"{issuer}|{subject}"), **fields}


class Accounts:
    """The account repository (used by the grant and by `tokenbroker accounts`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, account_id: str) -> Account | None:
        value = await self._store.get(make_key(ACCOUNT, account_id))
        return None if value is None else Account.from_json(value)

    async def list(self) -> list[Account]:
        return [Account.from_json(v) for _, v in await self._store.scan(f"{ACCOUNT}:")]

    async def linked(self, issuer: str, subject: str) -> str | None:
        value = await self._store.get(make_key(LINK, issuer, subject))
        return None if value is None else value["account"]

    async def by_attribute(self, name: str, value: str) -> str | None:
        if not normalise(value):
            return None
        found = await self._store.get(make_key(ATTR, name, normalise(value)))
        return None if found is None else found["account"]

    async def create(self, attributes: Mapping[str, str], *, index: tuple[str, ...] | None = None,
                     strict: bool = True) -> Account:
        """A new account (UUIDv4 id). `index` names the attributes made findable (default: all);
        `strict` refuses a value another account holds (AccountConflict), else leaves it unindexed."""
        account = Account(str(uuid.uuid4()), {k: v for k, v in attributes.items() if v})
        claimed: list[str] = []
        for name in (account.attributes if index is None else index):
            value = account.attributes.get(name)
            if not value or not normalise(value):
                continue
            key = make_key(ATTR, name, normalise(value))
            if await self._store.put_if_absent(key, {"account": account.id}):
                claimed.append(key)
            elif strict:
                for k in claimed:
                    await self._store.delete(k)
                raise AccountConflict(f"attribute {name} already belongs to another account")
        await self._store.put(make_key(ACCOUNT, account.id), account.as_json())
        return account

    async def link(self, account_id: str, issuer: str, subject: str) -> str:
        """Link issuer+subject to the account; returns the account that holds the link (another
        one when it was already linked elsewhere). KeyError for an unknown account."""
        account = await self.get(account_id)
        if account is None:
            raise KeyError(account_id)
        if not await self._store.put_if_absent(make_key(LINK, issuer, subject), {"account": account_id}):
            holder = await self.linked(issuer, subject)
            return holder or account_id
        if (issuer, subject) not in account.links:
            updated = Account(account.id, account.attributes, (*account.links, (issuer, subject)))
            await self._store.put(make_key(ACCOUNT, account.id), updated.as_json())
        return account_id

    async def unlink(self, issuer: str, subject: str) -> str | None:
        """Remove the link; the account it pointed to, or None when there was none."""
        value = await self._store.take(make_key(LINK, issuer, subject))
        if value is None:
            return None
        account = await self.get(value["account"])
        if account is not None:
            links = tuple(x for x in account.links if x != (issuer, subject))
            await self._store.put(make_key(ACCOUNT, account.id),
                                  Account(account.id, account.attributes, links).as_json())
        return value["account"]

    async def discard(self, account: Account) -> None:
        """Remove an account that lost a creation race (it has no links)."""
        for name, value in account.attributes.items():
            key = make_key(ATTR, name, normalise(value)) if normalise(value) else None
            if key and (await self._store.get(key) or {}).get("account") == account.id:
                await self._store.delete(key)
        await self._store.delete(make_key(ACCOUNT, account.id))


def lookup_value(issuer_name: str, claims: Mapping[str, Any], name: str, *, oid: str | None = None) -> str | None:
    """The value of lookup attribute `name` when the issuer vouches for it, else None."""
    if issuer_name == ENTRA:
        return oid if name == "oid" else None
    value = claims.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    if name in VERIFIED_BY and claims.get(VERIFIED_BY[name]) is not True:
        return None
    return value


def profile(issuer_name: str, claims: Mapping[str, Any], *, tid: str | None = None,
            oid: str | None = None) -> tuple[dict[str, str], tuple[str, ...]]:
    """Attributes of a just-in-time account, and the ones made findable (verified identifiers)."""
    attrs: dict[str, str] = {}
    for name in _PROFILE:
        value = claims.get(name)
        if not isinstance(value, str) or not value.strip():
            continue
        if name in VERIFIED_BY and (issuer_name == ENTRA or claims.get(VERIFIED_BY[name]) is not True):
            continue      # unverified (Entra never verifies email) → not even stored
        attrs[name] = value
    if issuer_name == ENTRA and tid and oid:
        attrs.update(tid=tid, oid=oid)
        return attrs, ("oid",)
    return attrs, tuple(n for n in VERIFIED_BY if n in attrs)


class AccountLinker:
    """Resolves a validated subject to its local account according to its issuer's mode."""

    def __init__(self, settings: Settings, accounts: Accounts) -> None:
        self._accounts = accounts
        self._modes: dict[str, tuple[str, tuple[str, ...]]] = {
            t.name: (t.linking, t.lookup_attributes) for t in settings.trusted_issuers}
        self._mandated = {t.name for t in settings.trusted_issuers if t.mandate_linked} | {ENTRA}
        if settings.entra is not None:
            self._modes[ENTRA] = (settings.entra.linking, settings.entra.lookup_attributes)

    def mode(self, issuer_name: str) -> str:
        return self._modes.get(issuer_name, ("none", ()))[0]

    async def resolve(self, subject: Subject, *, events: AuditEvents) -> Account | None:
        """The subject's account (None: use the derived local id); InvalidRequest when refused.
        What linking did (account.created / linked / unmatched) is appended to `events`, which the
        HTTP layer audits with the request (http/audit.py)."""
        if subject.issuer_name == SELF:
            return await self._accounts.get(subject.external_id)
        mode, lookup = self._modes.get(subject.issuer_name, ("none", ()))
        if mode == "none":
            return None
        issuer, ext = subject.issuer_name, subject.external_id
        account_id = await self._accounts.linked(issuer, ext)
        account = await self._accounts.get(account_id) if account_id else None
        if account is not None:
            return account
        if mode == "require_linked":
            raise InvalidRequest("The subject token is not acceptable.", reason="account_not_linked",
                                 detail=f"issuer={issuer}")
        if mode == "jit":
            return await self._create(subject, events)
        for name in lookup:
            value = lookup_value(issuer, subject.claims, name, oid=subject.oid)
            found = await self._accounts.by_attribute(name, value) if value else None
            if found is None:
                continue
            holder = await self._accounts.link(found, issuer, ext)
            if holder == found:
                events.append(link_event("account.linked", found, issuer, ext, method="attribute", attribute=name))
            return await self._accounts.get(holder)
        if issuer not in self._mandated:
            events.append(("account.unmatched", {"issuer": issuer, "subject": short_hash(f"{issuer}|{ext}"),
                                                 "lookup": ",".join(lookup), "outcome": "external_subject"}))
            return None
        raise InvalidRequest("The subject token is not acceptable.", reason="account_no_match",
                             detail=f"issuer={issuer} lookup={','.join(lookup)}")

    async def _create(self, subject: Subject, events: AuditEvents) -> Account | None:
        attrs, index = profile(subject.issuer_name, subject.claims, tid=subject.tid, oid=subject.oid)
        account = await self._accounts.create(attrs, index=index, strict=False)
        issuer, ext = subject.issuer_name, subject.external_id
        holder = await self._accounts.link(account.id, issuer, ext)
        if holder != account.id:          # a concurrent first exchange linked its own account
            await self._accounts.discard(account)
            return await self._accounts.get(holder)
        events.append(link_event("account.created", account.id, issuer, ext, method="jit"))
        events.append(link_event("account.linked", account.id, issuer, ext, method="jit"))
        return await self._accounts.get(account.id)


__all__ = ["Account", "AccountConflict", "AccountLinker", "Accounts", "AuditEvents", "link_event",
           "lookup_value", "profile"]
