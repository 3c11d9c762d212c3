"""Delegation (RFC 8693 §1.1, §4.1, §4.4): `actor_token` → a nested `act` claim.

Decided by what the tokens carry, not by which parameters happen to be present (Keycloak
#52691):

- `actor_token` ⇔ `actor_token_type`; the actor token is validated exactly like a subject
  token, by any issuer in the client's `allowed_issuers` (`entra`, a trusted issuer, `self`).
- An actor equal to the subject (same `iss` + `sub`, or the same local subject) is refused.
- A subject token with `may_act` needs an actor, and the actor must match it: `sub` equals
  the actor token's `sub`, and `iss` (when may_act names one; else the subject token's issuer)
  and `client_id` (when named) match too. Any refusal is `invalid_request`.
- The issued token gets `act = {"sub": <actor's local sub>, "client_id"?: <actor's client>}`.
  An `act` the subject token already carries (an earlier delegation) is kept, nested as
  `act.act`, and is kept even when no new actor is presented: delegation cannot be laundered
  away by exchanging again. An `act` asserted by another issuer (a partner, Entra) stays in
  that issuer's namespace: each node without `iss` gets the subject token's `iss`, and a node
  naming the broker (`server.public_url`) as its `iss` is refused (a partner cannot speak for us).
- An `act` the ACTOR token carries (an agent acting for an orchestrator) is kept too, nested
  under the new actor and namespaced the same way (in the actor token's issuer); the subject
  token's earlier chain follows at its end, so one chain reads newest actor first. The whole
  chain stays within `MAX_ACT_DEPTH`.
- A delegated token (one with `act`) never gets a refresh token (the grant checks `delegated`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service.digest import short_hash
from service.errors import InvalidRequest
from service.grants.base import TokenRequest
from service.grants.policy import SELF
from service.grants.subject_tokens import Subject, SubjectTokens

MAX_ACT_DEPTH = 8
_IDENTITY = ("sub", "iss", "client_id")
ACTOR_REFUSED = "The actor token is not acceptable."


@dataclass(frozen=True)
class Delegation:
    act: dict[str, Any] | None = None      # the `act` claim of the issued token
    actor: Subject | None = None           # the validated actor (None: no new actor)
    chain: tuple[str, ...] = ()            # hashed subs, newest actor first (audit only)

    @property
    def delegated(self) -> bool:
        return self.act is not None


def actor_param(req: TokenRequest) -> tuple[str, str] | None:
    """(actor_token, actor_token_type), or None; one without the other is invalid_request."""
    token, token_type = req.get("actor_token"), req.get("actor_token_type")
    if (token is None) != (token_type is None):
        raise InvalidRequest("actor_token and actor_token_type must be sent together.",
                             reason="actor_token_type_mismatch")
    return None if token is None or token_type is None else (token, token_type)


def _sanitize(value: object, depth: int) -> dict[str, Any]:
    """An `act` chain reduced to identity claims (RFC 8693 §4.1), depth-bounded."""
    if depth > MAX_ACT_DEPTH:
        raise InvalidRequest("The subject token is not acceptable.", reason="act_chain_too_deep")
    if not isinstance(value, Mapping) or not isinstance(value.get("sub"), str) or not value["sub"]:
        raise InvalidRequest("The subject token is not acceptable.", reason="act_malformed")
    out: dict[str, Any] = {k: value[k] for k in _IDENTITY if isinstance(value.get(k), str)}
    if "act" in value:
        out["act"] = _sanitize(value["act"], depth + 1)
    return out


def _own_namespace(act: dict[str, Any], iss: str, broker: str) -> dict[str, Any]:
    """An `act` chain asserted by another issuer, kept in that issuer's namespace: a node without
    `iss` gets the asserting issuer's (else its bare `sub` would read as one of our local
    subjects), and a node claiming to come from the broker itself is refused."""
    if act.get("iss") == broker:
        raise InvalidRequest("The subject token is not acceptable.", reason="act_claims_broker")
    out = {**act, "iss": act.get("iss", iss)}
    if "act" in act:
        out["act"] = _own_namespace(act["act"], iss, broker)
    return out


def _chain_hashes(act: Mapping[str, Any] | None, default_iss: str) -> tuple[str, ...]:
    out: list[str] = []
    while act is not None:
        out.append(short_hash(f"{act.get('iss', default_iss)}|{act['sub']}"))
        act = act.get("act")
    return tuple(out)


def _client_of(claims: Mapping[str, Any]) -> str | None:
    for name in ("client_id", "azp", "appid"):
        if isinstance(claims.get(name), str) and claims[name]:
            return claims[name]
    return None


def _may_act(subject: Subject) -> Mapping[str, Any] | None:
    if "may_act" not in subject.claims:
        return None
    may_act = subject.claims["may_act"]
    if not isinstance(may_act, Mapping) or not isinstance(may_act.get("sub"), str) or not may_act["sub"]:
        raise InvalidRequest("The subject token is not acceptable.", reason="may_act_malformed")
    return may_act


def _matches(may_act: Mapping[str, Any], actor: Subject, subject: Subject) -> bool:
    if actor.claims.get("sub") != may_act["sub"]:
        return False
    if actor.iss != may_act.get("iss", subject.iss):
        return False
    return "client_id" not in may_act or _client_of(actor.claims) == may_act["client_id"]


class Delegations:
    def __init__(self, subjects: SubjectTokens, *, broker_issuer: str = "") -> None:
        self._subjects = subjects
        self._broker = broker_issuer        # server.public_url: nobody else may assert our `act`

    async def resolve(self, req: TokenRequest, subject: Subject, *,
                      resolve_sub: Callable[[Subject], Awaitable[str]], now: float) -> Delegation:
        """The delegation of this exchange (validated actor, may_act, the new `act` chain)."""
        prior = _sanitize(subject.claims["act"], 1) if "act" in subject.claims else None
        if prior is not None and subject.issuer_name != SELF:
            prior = _own_namespace(prior, subject.iss, self._broker)
        may_act = _may_act(subject)
        param = actor_param(req)
        if param is None:
            if may_act is not None:
                raise InvalidRequest("The subject token requires an actor_token.", reason="may_act_without_actor")
            return Delegation(prior, None, _chain_hashes(prior, subject.iss))
        actor = await self._validate(req, *param, now=now)
        actor_prior = _sanitize(actor.claims["act"], 2) if "act" in actor.claims else None
        if actor_prior is not None and actor.issuer_name != SELF:
            actor_prior = _own_namespace(actor_prior, actor.iss, self._broker)
        chain = (short_hash(f"{actor.iss}|{actor.external_id}"), *_chain_hashes(actor_prior, actor.iss),
                 *_chain_hashes(prior, subject.iss))
        req.trace.extra["actor_chain"] = list(chain)          # audited on refusals too
        actor_sub, subject_sub = await resolve_sub(actor), await resolve_sub(subject)
        same_external = (actor.iss, actor.claims.get("sub")) == (subject.iss, subject.claims.get("sub"))
        if same_external or actor_sub == subject_sub:
            raise InvalidRequest(ACTOR_REFUSED, reason="actor_is_subject")
        if may_act is not None and not _matches(may_act, actor, subject):
            raise InvalidRequest(ACTOR_REFUSED, reason="may_act_mismatch")
        act: dict[str, Any] = {"sub": actor_sub}
        client = _client_of(actor.claims)
        if client is not None:
            act["client_id"] = client
        nested = _append(actor_prior, prior)
        if nested is not None:
            if _depth(nested) >= MAX_ACT_DEPTH:
                raise InvalidRequest("The subject token is not acceptable.", reason="act_chain_too_deep")
            act["act"] = nested
        return Delegation(act, actor, chain)

    async def _validate(self, req: TokenRequest, token: str, token_type: str, *, now: float) -> Subject:
        try:
            issuer = self._subjects.route(token, token_type, now=now)
            if issuer not in req.client.allowed_issuers:
                raise InvalidRequest(reason="subject_issuer_not_allowed", detail=f"issuer={issuer}")
            return await self._subjects.validate(token, issuer, client_id=req.client.client_id, now=now)
        except InvalidRequest as e:
            reason = "actor_" + e.reason.removeprefix("subject_")
            raise InvalidRequest(ACTOR_REFUSED, reason=reason, detail=e.detail) from e

    async def commit(self, delegation: Delegation) -> None:
        """Use up a single-use actor token (replay_check), once the request is acceptable."""
        if delegation.actor is not None:
            try:
                await self._subjects.commit(delegation.actor)
            except InvalidRequest as e:
                raise InvalidRequest(ACTOR_REFUSED, reason="actor_replayed", detail=e.detail) from e


def _append(head: dict[str, Any] | None, tail: dict[str, Any] | None) -> dict[str, Any] | None:
    """`tail` hung under the innermost node of `head` (copies; either may be None)."""
    if head is None:
        return tail
    out = dict(head)
    out["act"] = _append(head["act"], tail) if "act" in head else tail
    if out["act"] is None:
        del out["act"]
    return out


def _depth(act: Mapping[str, Any]) -> int:
    depth = 0
    node: Mapping[str, Any] | None = act
    while node is not None:
        depth, node = depth + 1, node.get("act")
    return depth
