"""The ACS SDK client runs a minimal azure-core pipeline: our request id, HMAC auth, the
response hook — and no SDK retries, no HTTP logging (nor its per-call redaction), no tracing."""

from __future__ import annotations

import logging

from azure.core.pipeline.policies import (
    ContentDecodePolicy,
    CustomHookPolicy,
    HeadersPolicy,
    UserAgentPolicy,
)

from service.downstream.acs_pipeline import acs_policies


def test_the_policy_list_is_headers_agent_decode_auth_hook(acs):
    from azure.core.credentials import AzureKeyCredential

    policies = acs_policies(acs.url, AzureKeyCredential(acs.access_key))
    kinds = [type(p).__name__ for p in policies]
    assert kinds == [HeadersPolicy.__name__, UserAgentPolicy.__name__, ContentDecodePolicy.__name__,
                     "HMACCredentialsPolicy", CustomHookPolicy.__name__]


async def test_a_teams_exchange_carries_our_request_id_and_logs_nothing_from_the_sdk(broker, tokens, acs, caplog):
    caplog.set_level(logging.DEBUG, logger="azure")
    resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=tokens.teams(), **{
        "X-Request-Id": "pipeline-test-1"}))
    assert resp.status == 201, await resp.text()
    (call,) = acs.requests(operation="get_token_for_teams_user")
    assert (call["client_request_id"], call["auth"], call["status"]) == ("pipeline-test-1", "hmac", 200)
    assert [r for r in caplog.records if r.name.startswith("azure.core.pipeline")] == []

