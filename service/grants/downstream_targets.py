"""Downstream targets at `/oauth2/token`: `audience=acs:teams` and `audience=obo:<name>`.

The Microsoft downstreams as RFC 8693 exchange outputs, allowed per client in
`allowed_audiences` like any other audience (deny by default):

    acs:teams     subject_token = the user's Teams token (Entra token for ACS), checked locally
                  exactly as for `/api/token/teams` (validation/teams.py); then ACS
                  `get_token_for_teams_user` through the app's AcsClient (cache, single-flight).
                  → token_type `N_A`, expires_in <= the Teams token's remaining life
    obo:<name>    subject_token = the user's Entra token for the broker (the bearer rules);
                  then Entra On-Behalf-Of for `[obo.<name>]` through the app's EntraOboClient.
                  → token_type `Bearer`, expires_in as Entra granted, scope = its configured scopes

Both issue `urn:ietf:params:oauth:token-type:access_token`, never a refresh token, and need
the client to be allowed the `entra` issuer. The Entra user's account linking (`[entra] linking`)
applies before the downstream call: `require_linked` refuses an unlinked user, `jit` links one. `evaluate` adds the downstream rules to
`policy.evaluate` (one pure function for the endpoint and `tokenbroker explain`):

    rule                             error            when
    audience.downstream_mixed        invalid_target   a downstream target with any other target
    (policy.evaluate's rules)                         grant_type, issuer, audience
    issuer.downstream                invalid_request  the subject token is not an Entra token
    audience.downstream_unavailable  invalid_target   no [acs] / no [obo.<name>] / no [entra]
    scope.downstream                 invalid_scope    a `scope` was sent (the target fixes it)
"""

from __future__ import annotations

from service.digest import short_hash
from service.errors import (
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    TokenValidationError,
)
from service.grants import policy
from service.grants.base import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE, TokenRequest, TokenResponse
from service.grants.collaborators import EntraTokens, OboExchange, TeamsExchange
from service.grants.downstream_calls import call_acs_teams, call_obo
from service.grants.exchange_params import read_exchange_params
from service.grants.linking import AccountLinker
from service.grants.policy import ENTRA, Decision, PolicyInput
from service.grants.subject_tokens import Subject, SubjectTokens
from service.settings import Settings
from service.validation.entra import EntraPrincipal

ACS_TEAMS = "acs:teams"
OBO_PREFIX = "obo:"
__all__ = ["ACS_TEAMS", "OBO_PREFIX", "DownstreamTargets", "available_targets", "enforce", "evaluate",
           "is_downstream"]


def is_downstream(target: str) -> bool:
    return target == ACS_TEAMS or target.startswith(OBO_PREFIX)


def available_targets(settings: Settings) -> list[str]:
    """The downstream targets this configuration can serve (advertised in the metadata)."""
    if settings.entra is None:
        return []
    out = [ACS_TEAMS] if settings.acs is not None else []
    return out + [f"{OBO_PREFIX}{name}" for name in sorted(settings.obo)]


def evaluate(inp: PolicyInput, settings: Settings) -> Decision:
    """`policy.evaluate` plus the downstream rules; pure, never raises."""
    downstream = [a for a in inp.audiences if is_downstream(a)]
    if not downstream:
        return policy.evaluate(inp)
    if len(inp.audiences) > 1:
        return Decision(False, "audience.downstream_mixed",
                        f"{downstream[0]} must be the only audience or resource of the request")
    target = downstream[0]
    base = policy.evaluate(PolicyInput(inp.client, inp.grant_type, inp.issuer, inp.audiences, None))
    if not base.allowed:
        return base
    if inp.issuer != ENTRA:
        return Decision(False, "issuer.downstream", f"{target} needs an Entra subject token, not {inp.issuer}")
    if target not in available_targets(settings):
        return Decision(False, "audience.downstream_unavailable", f"{target} is not configured")
    if inp.requested_scopes is not None:
        return Decision(False, "scope.downstream", f"{target} takes no scope parameter")
    if target == ACS_TEAMS:
        return Decision(True, "allow", "acs:teams: an ACS token for the Teams token's user")
    scopes = settings.obo[target[len(OBO_PREFIX):]].scopes
    return Decision(True, "allow", f"{target}: on-behalf-of the subject for its configured scopes",
                    tuple(scopes))


_ERRORS: dict[str, type[OAuthError]] = {
    "audience.downstream_mixed": InvalidTarget, "audience.downstream_unavailable": InvalidTarget,
    "scope.downstream": InvalidScope, "issuer.downstream": InvalidRequest,
}


def enforce(decision: Decision) -> Decision:
    """The decision when allowed, else the RFC error of its rule (policy.enforce for its own)."""
    error = _ERRORS.get(decision.rule)
    if decision.allowed or error is None:
        return policy.enforce(decision)
    description = "The subject token is not acceptable." if error is InvalidRequest else None
    raise error(description, detail=decision.explanation, reason=decision.reason)


class DownstreamTargets:
    """The `acs:teams` / `obo:<name>` branch of the token-exchange grant (no per-request state).

    `entra`, `acs` and `obo` are the app's EntraValidator, AcsClient and EntraOboClient
    (None when not configured)."""

    def __init__(self, settings: Settings, *, subjects: SubjectTokens, entra: EntraTokens | None = None,
                 acs: TeamsExchange | None = None, obo: OboExchange | None = None) -> None:
        self._settings = settings
        self._subjects = subjects
        self._entra, self._acs, self._obo = entra, acs, obo

    async def handle(self, req: TokenRequest, *, now: float, linker: AccountLinker | None = None) -> TokenResponse:
        """`linker` (grants/linking.py): the Entra user's account-linking mode applies here too,
        so `require_linked` refuses an unlinked user before ACS or Entra is called."""
        trace = req.trace
        req.require("subject_token")
        req.require("subject_token_type")
        if req.get("actor_token") is not None or req.get("actor_token_type") is not None:
            # ACS and Entra tokens cannot carry `act`: no delegation into a downstream
            raise InvalidRequest("Delegation is not supported for downstream targets.",
                                 reason="downstream_delegation_unsupported")
        params = read_exchange_params(req, self._subjects, token_types=(ACCESS_TOKEN_TYPE,), now=now)
        subject_token, targets, issuer_name = params.subject_token, params.targets, params.issuer
        requested_scopes = params.requested_scopes
        decision = evaluate(PolicyInput(req.client, TOKEN_EXCHANGE, issuer_name, targets, requested_scopes),
                            self._settings)
        trace.rule = decision.rule
        enforce(decision)
        validator = self._entra
        if validator is None:
            raise InvalidTarget(detail="no Entra validator", reason="downstream_unavailable")
        target = targets[0]

        async def check(p: EntraPrincipal) -> None:
            if linker is not None:
                await linker.resolve(Subject(ENTRA, str(p.claims.get("iss", "")), f"{p.tid}/{p.oid}",
                                             frozenset(), int(p.exp), p.claims, tid=p.tid, oid=p.oid),
                                     events=req.trace.events)

        try:
            if target == ACS_TEAMS:
                result = await call_acs_teams(validator, self._acs, self._settings, subject_token,
                                              trace=trace, now=now, check=check)
            else:
                result = await call_obo(validator, self._obo, target[len(OBO_PREFIX):], subject_token,
                                        trace=trace, now=now, check=check)
        except TokenValidationError as e:
            raise InvalidRequest("The subject token is not acceptable.", reason=f"subject_{e.reason}",
                                 detail=e.detail) from e
        trace.subject_hash = short_hash(f"{result.iss}|{result.tid}/{result.oid}")
        trace.issued_token_type = ACCESS_TOKEN_TYPE
        trace.jti = result.token_id
        return TokenResponse(access_token=result.token, issued_token_type=ACCESS_TOKEN_TYPE,
                             expires_in=result.expires_in, token_type=result.token_type, scope=result.scope)
