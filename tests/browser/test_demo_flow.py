"""The one-command demo in a real browser: Debian's headless Chromium drives the minimal
client of `tokenbroker dev`, signs in on the Entra emulator's page and presses every button.

Alice (consented to everything) gets the Teams, workspace (OBO) and ACS identity tokens and
signs out; Bob (no consent for the workspace API) sees the broker's 403 `consent_required`
exactly as the broker returned it. Screenshots go to test-artifacts/; with
UPDATE_SCREENSHOT=1 Alice's page also becomes docs/screenshot.png (the README's picture).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from emulators.entra import demo

from .conftest import REPO

pytestmark = pytest.mark.browser

COUNTDOWN = re.compile(r"\d+:\d\d left")


def sign_in(page: Page, client_url: str, who: str, name: str) -> None:
    """Sign in from the client's page by clicking `who`'s button on the emulator's picker."""
    page.goto(client_url + "/")
    expect(page.locator("#btn-login")).to_be_visible()
    page.click("#btn-login")
    page.wait_for_url("https://127.0.0.1:*/**")
    expect(page.locator("h1")).to_have_text("Pick an account")
    page.click(f"[data-testid='signin-{who}']")
    page.wait_for_url(client_url + "/")
    expect(page.locator("#whoami")).to_have_text(name)


def press(page: Page, key: str) -> dict:
    """Click `#btn-{key}`, wait for its result, return the claims shown (decoded JSON)."""
    page.click(f"#btn-{key}")
    result = page.locator(f"#result-{key}")
    expect(result.locator(".status")).to_be_visible()
    expect(page.locator(f"#btn-{key}")).to_be_enabled()
    claims = result.locator(".claims").text_content() or ""
    return json.loads(claims) if claims.startswith("{") else {"_text": claims}


def broker_answer(dev_stack, user: str, method: str, path: str) -> tuple[int, dict]:
    """Ask the broker directly (no browser, no client) with a broker-audience token for `user`
    from the emulator's control plane, as in the `tokenbroker dev` banner."""
    tls = ssl.create_default_context(cafile=dev_stack.ca_bundle)
    body = json.dumps({"resource": demo.BROKER_CLIENT_ID, "user": user, "client_id": demo.CLIENT_ID,
                       "scopes": ["user_impersonation"]}).encode()
    mint = urllib.request.Request(dev_stack.entra_url + "/_emulator/token", data=body, method="POST",
                                  headers={"content-type": "application/json"})
    with urllib.request.urlopen(mint, context=tls, timeout=10) as resp:
        token = json.load(resp)["access_token"]
    call = urllib.request.Request(f"http://127.0.0.1:{dev_stack.port}{path}", method=method,
                                  headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(call, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.load(err)


def test_alice_gets_every_token_and_signs_out(page: Page, dev_stack, artifacts_dir) -> None:
    sign_in(page, dev_stack.client_url, "alice", demo.ALICE_NAME)
    expect(page.locator("#who-username")).to_have_text(demo.ALICE_UPN)
    expect(page.locator("#who-tid")).to_have_text(dev_stack.tenant_id)
    oid = page.locator("#who-oid").text_content()

    teams = press(page, "teams")
    result = page.locator("#result-teams")
    expect(result.locator(".status")).to_have_text("201")
    expect(result.locator(".error")).to_have_count(0)
    assert teams.get("skypeid") == f"orgid:{oid}", teams
    expect(result.locator(".countdown")).to_have_text(COUNTDOWN)

    workspace = press(page, "obo-workspace")
    result = page.locator("#result-obo-workspace")
    expect(result.locator(".status")).to_have_text("200")
    expect(result.locator(".error")).to_have_count(0)
    assert workspace.get("aud") == demo.WORKSPACE_CLIENT_ID, workspace
    assert (workspace.get("tid"), workspace.get("oid")) == (dev_stack.tenant_id, oid), workspace
    assert workspace.get("preferred_username") == demo.ALICE_UPN, workspace
    expect(result.locator(".countdown")).to_have_text(COUNTDOWN)

    acs = press(page, "acs")
    result = page.locator("#result-acs")
    expect(result.locator(".status")).to_have_text("201")
    expect(result.locator(".error")).to_have_count(0)
    raw = json.loads(result.locator(".broker-response").text_content() or "{}")
    user_id = raw.get("user", {}).get("communicationUserId", "")
    assert user_id.startswith("8:acs:"), raw
    assert acs.get("skypeid") == user_id.removeprefix("8:"), acs
    expect(result.locator(".countdown")).to_have_text(COUNTDOWN)

    shot = artifacts_dir / "demo-alice.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "screenshot.png")

    page.click("#btn-logout")
    expect(page.locator("#btn-login")).to_be_visible()
    expect(page.locator("#whoami")).to_have_count(0)
    page.goto(dev_stack.client_url + "/")
    expect(page.locator("#btn-login")).to_be_visible()


def test_bob_sees_the_brokers_consent_required(page: Page, dev_stack, artifacts_dir) -> None:
    sign_in(page, dev_stack.client_url, "bob", demo.BOB_NAME)

    press(page, "obo-workspace")
    result = page.locator("#result-obo-workspace")
    expect(result.locator(".status")).to_have_text("403")
    error = json.loads(result.locator(".error").text_content() or "{}")
    assert error.get("error") == "consent_required", error
    assert (403, error) == broker_answer(dev_stack, demo.BOB_UPN, "POST", "/api/token/obo/workspace")
    expect(result.locator(".claims")).to_have_text("(no token to decode)")
    expect(result.locator(".countdown")).to_have_text("no expiry known")

    page.screenshot(path=str(artifacts_dir / "demo-bob-refused.png"), full_page=True)
