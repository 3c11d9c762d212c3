"""Service-principal federation (as in ProAuth / Entra workload identity federation).

A client lists external identities it may be reached as:

    [[clients]]
    client_id = "build-agent"
    federated_identities = [{ issuer = "ci", subject = "repo:acme/app:ref:refs/heads/main",
                              audience = "tokenbroker-federation" }]

A broker client that may target `build-agent` (it is in its `allowed_audiences`, the issuer
in its `allowed_issuers`) exchanges a token of trusted issuer `ci` with `audience=build-agent`.
When the validated token's (issuer, `sub`) is one of `build-agent`'s federated identities,
the issued token is a service-principal token: `sub` = `client_id` = `build-agent`, no user
claims, scope also within `build-agent`'s `allowed_scopes`, no refresh token.

    match                                          outcome
    (issuer, sub) unknown                          the normal user flow
    known, but its client is not a target          the normal user flow
    known, client targeted, token `aud` lacks      400 invalid_request (federation_audience)
      every matching entry's `audience`
    known, client targeted, `aud` matches          federated (audit field federated_client)

An issuer+subject pair belongs to one client only; settings refuse a second owner at load
(`clients[<id>].federated_identities[<i>].subject`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.errors import InvalidRequest, InvalidScope
from service.settings import ClientSettings, FederatedIdentity, Settings
from service.validation.jwt_checks import audiences


class Federation:
    """(trusted issuer name, external `sub`) → the client it federates into; built once."""

    def __init__(self, settings: Settings) -> None:
        self._index: dict[tuple[str, str], tuple[ClientSettings, list[FederatedIdentity]]] = {}
        for client in settings.clients:
            for fed in client.federated_identities:
                entry = self._index.setdefault((fed.issuer, fed.subject), (client, []))
                if entry[0].client_id == client.client_id:    # settings guarantee one owner
                    entry[1].append(fed)

    def __bool__(self) -> bool:
        return bool(self._index)

    def match(self, issuer_name: str, external_id: str, claims: Mapping[str, Any],
              targets: tuple[str, ...]) -> ClientSettings | None:
        """The federated client this validated subject becomes, or None for the user flow."""
        entry = self._index.get((issuer_name, external_id))
        if entry is None:
            return None
        client, identities = entry
        if client.client_id not in targets:
            return None
        auds = audiences(claims)
        if not any(fed.audience in auds for fed in identities):
            raise InvalidRequest("The subject token is not acceptable.", reason="federation_audience",
                                 detail=f"federated_client={client.client_id}")
        return client


def federated_scopes(client: ClientSettings, granted: tuple[str, ...],
                     requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """Scope of a service-principal token: also within the federated client's allowed_scopes."""
    if requested is not None:
        extra = [s for s in requested if s not in client.allowed_scopes]
        if extra:
            raise InvalidScope(reason="denied_scope_federated",
                               detail=f"scope {extra[0]} is not in {client.client_id}'s allowed_scopes")
    return tuple(s for s in granted if s in client.allowed_scopes)


__all__ = ["Federation", "federated_scopes"]
