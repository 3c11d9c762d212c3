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


def test_the_policy_list_is_headers_agent_decode_charset_auth_hook(acs):
    from azure.core.credentials import AzureKeyCredential

    policies = acs_policies(acs.url, AzureKeyCredential(acs.access_key))
    kinds = [type(p).__name__ for p in policies]
    assert kinds == [HeadersPolicy.__name__, UserAgentPolicy.__name__, ContentDecodePolicy.__name__,
                     "JsonCharsetPolicy", "AcsHmacPolicy", CustomHookPolicy.__name__]


async def test_a_teams_exchange_carries_our_request_id_and_logs_nothing_from_the_sdk(broker, tokens, acs, caplog):
    caplog.set_level(logging.DEBUG, logger="azure")
    resp = await broker.get("/api/token/teams", headers=tokens.headers(teams=tokens.teams(), **{
        "X-Request-Id": "pipeline-test-1"}))
    assert resp.status == 201, await resp.text()
    (call,) = acs.requests(operation="get_token_for_teams_user")
    assert (call["client_request_id"], call["auth"], call["status"]) == ("pipeline-test-1", "hmac", 200)
    assert [r for r in caplog.records if r.name.startswith("azure.core.pipeline")] == []



async def test_our_hmac_signature_is_the_sdks_for_the_same_request():
    from azure.communication.identity._shared.policy import HMACCredentialsPolicy
    from azure.core.credentials import AzureKeyCredential
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.core.rest import HttpRequest

    from service.downstream.acs_pipeline import AcsHmacPolicy

    endpoint, key = "https://acs.example:8443", AzureKeyCredential("dGVzdC1vbmx5LWFjcy1lbXVsYXRvci1hY2Nlc3Mta2V5MDE=")
    ours, sdk = AcsHmacPolicy(endpoint, key), HMACCredentialsPolicy(endpoint, key, decode_url=True)
    transport = AioHttpTransport()
    paths = ["/teamsUser/:exchangeAccessToken?api-version=2023-10-01",
             "/identities/8:acs:r_00000000-0000-0000-0000-000000000000/:issueAccessToken?api-version=2023-10-01",
             "/identities?api-version=2023-10-01"]
    for path in paths:
        for _attempt in range(3):   # both read the clock: compare within one second
            signed = []
            for policy in (ours, sdk):
                request = HttpRequest("POST", endpoint + path, content='{"a": "é"}')
                policy.on_request(PipelineRequest(request, PipelineContext(transport)))
                signed.append(dict(request.headers))
            if signed[0]["x-ms-date"] == signed[1]["x-ms-date"]:
                break
        keys = ("x-ms-date", "x-ms-content-sha256", "Authorization", "x-ms-return-client-request-id")
        assert [signed[0][k] for k in keys] == [signed[1][k] for k in keys], path
    await transport.close()
