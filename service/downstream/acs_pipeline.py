"""The ACS Identity client's azure-core pipeline, with only the policies the broker needs.

The SDK's default pipeline runs, on every call: request-id, headers, user agent, proxy (reads
the environment), content decoding, redirects, retries, authentication, the response hook,
network-trace logging, distributed tracing, sensitive-header clean-up and HTTP logging with
per-call header redaction — about a quarter of the CPU of a Teams exchange. The broker sets
its own `x-ms-client-request-id` (headers policy), retries in its own layer (retry.py), never
follows redirects to ACS, logs its own lines (never the SDK's) and has no tracing, so the
pipeline is:

    headers → user agent → content decoding → authentication (HMAC or Entra bearer) → response hook

`get_authentication_policy` is the SDK's own choice between HMAC-SHA256 and bearer tokens
(the same call its client constructor makes); tests/acs/test_acs_pipeline.py pins the list.
"""

from __future__ import annotations

from typing import Any

from azure.communication.identity._shared.auth_policy_utils import get_authentication_policy
from azure.communication.identity._version import SDK_MONIKER
from azure.core.pipeline.policies import (
    ContentDecodePolicy,
    CustomHookPolicy,
    HeadersPolicy,
    UserAgentPolicy,
)


def acs_policies(endpoint: str, credential: Any) -> list[Any]:
    """The policy list for `CommunicationIdentityClient(..., policies=acs_policies(...))`."""
    return [
        HeadersPolicy(),
        UserAgentPolicy(sdk_moniker=SDK_MONIKER),
        ContentDecodePolicy(),
        get_authentication_policy(endpoint, credential, decode_url=True, is_async=True),
        CustomHookPolicy(),
    ]
