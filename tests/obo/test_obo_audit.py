"""Every POST /api/token/obo/{name} is one `obo.exchange` audit event, from the HTTP layer:
refusals before any Entra call (no or a bad bearer token, an unknown downstream, an app-only
caller) are audited like an exchange Entra refused, and none holds a token."""

from __future__ import annotations

from structlog.testing import capture_logs

from emulators.entra import demo
from tests.obo.conftest import obo, obo_calls, portal_token


def obo_events(logs: list[dict]) -> list[dict]:
    return [e for e in logs if e["event"] == "obo.exchange"]


async def test_a_request_without_a_bearer_token_is_audited_as_denied(broker, entra):
    with capture_logs() as logs:
        resp, _ = await obo(broker, None)
    assert resp.status == 401
    [event] = obo_events(logs)
    assert (event["decision"], event["reason"]) == ("deny", "missing")
    assert event["route"] == "POST /api/token/obo/workspace" and "tid" not in event
    assert event["status"] is None and event["cache"] is None      # Entra was never asked
    assert obo_calls(entra) == []


async def test_an_expired_bearer_token_is_audited_with_its_reason(broker, entra):
    token = portal_token(entra, lifetime=-600)
    with capture_logs() as logs:
        resp, _ = await obo(broker, token)
    assert resp.status == 401
    [event] = obo_events(logs)
    assert (event["decision"], event["reason"]) == ("deny", "expired")
    assert token not in repr(logs)


async def test_an_unknown_downstream_is_audited_with_the_callers_identity(broker, entra):
    with capture_logs() as logs:
        resp, _ = await obo(broker, portal_token(entra), name="nope")
    assert resp.status == 404
    [event] = obo_events(logs)
    assert (event["decision"], event["reason"]) == ("deny", "unknown_downstream")
    assert event["downstream"] == "nope" and event["tid"] == demo.TENANT_ID
    assert event["user"] != demo.ALICE_OID and len(event["user"]) == 12


async def test_an_app_only_caller_is_audited_as_denied(obo_broker, entra):
    broker = await obo_broker(allow_app_only=True)
    token = entra.mint(resource=demo.BROKER_CLIENT_ID, client_id=demo.DAEMON_CLIENT_ID, app_only=True)
    with capture_logs() as logs:
        resp, _ = await obo(broker, token)
    assert resp.status == 403
    [event] = obo_events(logs)
    assert (event["decision"], event["reason"], event["client_app"]) == ("deny", "app_only", demo.DAEMON_CLIENT_ID)
