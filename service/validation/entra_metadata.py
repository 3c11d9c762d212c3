"""Which Entra documents the broker reads to validate a token, and the key-issuer rule.

What login.microsoftonline.com serves (docs/validation.md has the evidence):

- `/{tid}/v2.0/.well-known/openid-configuration` names that tenant's concrete issuer, and its
  key document `/{tid}/discovery/v2.0/keys` carries, on each key, `"issuer"` = that same concrete
  issuer. Only the tenant-independent documents (`/organizations/...`, `/common/...`) say
  `https://login.microsoftonline.com/{tenantid}/v2.0`, on the document and on every key.
- v1 documents (`/{tid}/.well-known/openid-configuration`, `/common/...`) name
  `https://sts.windows.net/{tid or {tenantid}}/` and their keys carry no `issuer`.
- The signing keys themselves are the same global keys in all these documents, except for
  apps with claims mapping: their tokens are signed with app-specific keys published only at
  `<jwks_uri>?appid=<client id>`.

So with only the home tenant allowed the broker reads the home tenant's documents (strictest:
any other tenant's key issuer disagrees). With several tenants allowed it reads the
tenant-independent documents, v2 `organizations` (personal accounts excluded) and v1 `common`,
and checks the key issuer the way Microsoft.IdentityModel's
`AadTokenValidationParametersExtension.ValidateSigningKeyIssuer` does: the key's `issuer` with
the token's `tid` substituted must equal the token's `iss` or the v2 issuer of that tenant.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from service.errors import DownstreamError
from service.settings import EntraSettings
from service.validation.jwks import JwksCache

V1, V2 = "1.0", "2.0"
PLACEHOLDER = "{tenantid}"
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@functools.lru_cache(maxsize=64)   # called per token: the same few documents every time
def issuer_template(issuer: str, home_tenant: str) -> str:
    """The discovery `issuer` with the tenant replaced by `{tenantid}`."""
    if PLACEHOLDER in issuer:
        return issuer
    if home_tenant and home_tenant.lower() in issuer.lower():
        return re.sub(re.escape(home_tenant), PLACEHOLDER, issuer, flags=re.IGNORECASE)
    raise DownstreamError("The identity provider's metadata is unusable.", status=502, service="entra",
                          detail=f"discovery issuer {issuer[:100]!r} does not name the home tenant",
                          reason="discovery")


def with_appid(jwks_uri: str, client_id: str) -> str:
    """The key document of an app with claims mapping: `?appid=<client id>` appended."""
    return f"{jwks_uri}{'&' if '?' in jwks_uri else '?'}appid={client_id}"


class EntraMetadata:
    """The discovery documents for this configuration, through the shared JWKS cache."""

    def __init__(self, entra: EntraSettings, jwks: JwksCache) -> None:
        self._entra = entra
        self._jwks = jwks
        self._fields: dict[str, tuple[Any, tuple[str, str]]] = {}   # per version: (document, its fields)
        home = entra.tenant_id.lower()
        self.multi_tenant = any(t.lower() != home for t in entra.allowed_tenants)
        authority = entra.authority.rstrip("/")
        if self.multi_tenant:
            self.discovery_urls = {V2: f"{authority}/organizations/v2.0/.well-known/openid-configuration",
                                   V1: f"{authority}/common/.well-known/openid-configuration"}
        else:
            base = f"{authority}/{entra.tenant_id}"
            self.discovery_urls = {V2: f"{base}/v2.0/.well-known/openid-configuration",
                                   V1: f"{base}/.well-known/openid-configuration"}
        self._own_audiences = frozenset(entra.audiences)

    async def issuer_and_keys(self, version: str) -> tuple[str, str]:
        """(issuer template, jwks_uri) of the `version` discovery document."""
        doc = self._jwks.known_document(self.discovery_urls[version]) \
            or await self._jwks.get_document(self.discovery_urls[version])
        known = self._fields.get(version)
        if known is not None and known[0] is doc:    # the same document object: the same answer
            return known[1]
        fields = self.doc_fields(doc)
        self._fields[version] = (doc, fields)
        return fields

    def doc_fields(self, doc: Mapping[str, Any]) -> tuple[str, str]:
        issuer, jwks_uri = doc.get("issuer"), doc.get("jwks_uri")
        if not isinstance(issuer, str) or not isinstance(jwks_uri, str) or not jwks_uri:
            raise DownstreamError("The identity provider's metadata is unusable.", status=502,
                                  service="entra", detail="discovery lacks issuer/jwks_uri",
                                  reason="discovery")
        return issuer_template(issuer, self._entra.tenant_id), jwks_uri

    def key_document(self, jwks_uri: str, aud: Any) -> str:
        """The key document for a token with this `aud`: app-specific keys sign only the tokens
        for the broker's own API (`app_signing_keys`), every other token uses the global keys."""
        if self._entra.app_signing_keys and isinstance(aud, str) and aud in self._own_audiences:
            return with_appid(jwks_uri, self._entra.client_id)
        return jwks_uri

    async def key_issuer_agrees(self, key_issuer: str, tid: str, iss: str) -> bool:
        """The key's `issuer`, `{tenantid}` replaced by the token's `tid`, must be the token's
        `iss`, or the v2 issuer of that tenant (a v1 token checked against a v2 key)."""
        effective = key_issuer.replace(PLACEHOLDER, tid)
        if effective == iss:
            return True
        template, _ = await self.issuer_and_keys(V2)
        return effective == template.replace(PLACEHOLDER, tid)
