"""The OpenAPI document and the behaviour agree where fuzzing found them apart (issue 14, finding 7):
form field names with control characters, and an empty `teams-user-aad-token`."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from tests.http.token_support import basic

NAMES = ["plain", "with space", "tab\there", "ünïcødé", "del\x7fchar", "nul\x00", "bell\x07", "line\nfeed",
         "cr\rhere", "esc\x1b", "unit\x1f"]
FORM_ROUTES = ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"]


@pytest.fixture(name="document")
async def _document(client) -> dict:
    resp = await client.get("/openapi.json")
    return await resp.json()


def form_schema(document: dict, path: str) -> dict:
    return document["paths"][path]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]


@pytest.mark.parametrize("path", FORM_ROUTES)
def test_every_form_documents_which_field_names_it_refuses(document, path):
    assert "pattern" in form_schema(document, path).get("propertyNames", {}), path


@pytest.mark.parametrize("name", NAMES, ids=repr)
async def test_a_field_name_is_accepted_exactly_when_the_document_allows_it(client, document, name):
    allowed = re.search(form_schema(document, "/oauth2/introspect")["propertyNames"]["pattern"], name) is not None
    resp = await client.post("/oauth2/introspect", data=urlencode([("token", "x"), (name, "1")]),
                             headers={**basic("inspector"), "Content-Type": "application/x-www-form-urlencoded"})
    body = await resp.json()
    assert (resp.status == 200) == allowed, (resp.status, body)
    if not allowed:
        assert resp.status == 400 and body["error"] == "invalid_request"


def test_the_teams_header_is_documented_as_non_blank(document):
    [header] = [p for p in document["paths"]["/api/token/teams"]["get"]["parameters"]
                if p["name"] == "teams-user-aad-token"]
    schema = header["schema"]
    assert schema.get("minLength", 0) >= 1
    for blank in ("", " ", "\t"):
        assert len(blank) < schema["minLength"] or re.search(schema["pattern"], blank) is None, repr(blank)
    assert re.search(schema["pattern"], "eyJ.a.b")
