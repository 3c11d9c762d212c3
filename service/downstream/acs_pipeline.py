"""The ACS Identity client's azure-core pipeline, with only the policies the broker needs.

The SDK's default pipeline runs, on every call: request-id, headers, user agent, proxy (reads
the environment), content decoding, redirects, retries, authentication, the response hook,
network-trace logging, distributed tracing, sensitive-header clean-up and HTTP logging with
per-call header redaction — about a quarter of the CPU of a Teams exchange. The broker sets
its own `x-ms-client-request-id` (headers policy), retries in its own layer (retry.py), never
follows redirects to ACS, logs its own lines (never the SDK's) and has no tracing, so the
pipeline is:

    headers → user agent → content decoding → JSON charset → authentication → response hook

(responses pass the policies inner to outer: the JSON charset is known before decoding)

Authentication: an `AzureKeyCredential` (access key or connection string) signs each request
with `AcsHmacPolicy` — the HMAC-SHA256 scheme of the SDK's own `HMACCredentialsPolicy`
(notes/acs.md §2), without its per-call imports and key decoding; any other credential (Entra,
managed identity) gets azure-core's `AsyncBearerTokenCredentialPolicy` for ACS's scope.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.communication.identity._version import SDK_MONIKER
from azure.core.credentials import AzureKeyCredential
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import (
    AsyncBearerTokenCredentialPolicy,
    ContentDecodePolicy,
    CustomHookPolicy,
    HeadersPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from yarl import URL

ACS_SCOPE = "https://communication.azure.com//.default"
SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"


class AcsHmacPolicy(SansIOHTTPPolicy):
    """`Authorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=…`
    over "VERB\\npath?query\\ndate;host;body-sha256" (the path as aiohttp sends it, decoded)."""

    def __init__(self, endpoint: str, credential: AzureKeyCredential) -> None:
        self._host = urlsplit(endpoint).netloc
        self._credential = credential
        self._key_text = ""
        self._key = b""

    def _secret(self) -> bytes:
        text = self._credential.key   # re-read: AzureKeyCredential.update() rotates it
        if text != self._key_text:
            self._key, self._key_text = base64.b64decode(text), text
        return self._key

    def on_request(self, request: PipelineRequest) -> None:
        http = request.http_request
        path = _signed_path(http.url)
        body = http.body
        if body is None:
            http.body = body = ""
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        content_hash = base64.b64encode(hashlib.sha256(raw).digest()).decode()
        date = _http_date()
        to_sign = f"{http.method.upper()}\n{path}\n{date};{self._host};{content_hash}"
        signature = base64.b64encode(hmac.new(self._secret(), to_sign.encode(), hashlib.sha256).digest()).decode()
        http.headers.update({
            "x-ms-date": date, "x-ms-content-sha256": content_hash, "x-ms-return-client-request-id": "true",
            "Authorization": f"HMAC-SHA256 SignedHeaders={SIGNED_HEADERS}&Signature={signature}"})


@functools.lru_cache(maxsize=256)   # a handful of operation URLs; yarl parsing is ~10 µs a call
def _signed_path(url: str) -> str:
    """The path?query that is signed: as aiohttp sends it (yarl-normalised), percent-decoded."""
    parts = urlsplit(url)
    return unquote(str(URL(parts.path + (f"?{parts.query}" if parts.query else ""))))


_date_second = -1
_date_text = ""


def _http_date() -> str:
    """`formatdate(usegmt=True)` for now, formatted once per second."""
    global _date_second, _date_text
    second = int(time.time())
    if second != _date_second:
        _date_second, _date_text = second, formatdate(second, usegmt=True)
    return _date_text


_UTF8_JSON = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})


class JsonCharsetPolicy(SansIOHTTPPolicy):
    """Tells a JSON response its encoding when the Content-Type says it plainly: the SDK would
    parse the header with `email.message` on every call (~3 % of a Teams exchange) to learn the
    same "utf-8" (RFC 8259). Any other Content-Type is left to the SDK."""

    def on_response(self, request: PipelineRequest, response: Any) -> None:
        http = response.http_response
        content_type = http.headers.get("Content-Type")
        if content_type is not None and content_type.strip().lower() in _UTF8_JSON:
            http.encoding = "utf-8"


def auth_policy(endpoint: str, credential: Any) -> Any:
    if isinstance(credential, AzureKeyCredential):
        return AcsHmacPolicy(endpoint, credential)
    return AsyncBearerTokenCredentialPolicy(credential, ACS_SCOPE)


def acs_policies(endpoint: str, credential: Any) -> list[Any]:
    """The policy list for `CommunicationIdentityClient(..., policies=acs_policies(...))`."""
    return [HeadersPolicy(), UserAgentPolicy(sdk_moniker=SDK_MONIKER), ContentDecodePolicy(),
            JsonCharsetPolicy(), auth_policy(endpoint, credential), CustomHookPolicy()]
