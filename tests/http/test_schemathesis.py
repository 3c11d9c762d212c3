"""Schema-driven fuzzing of the whole broker with schemathesis (issue 14).

The real app (full config: Entra and ACS emulators, OBO, a trusted issuer, clients) is served
on a real socket in a background thread; schemathesis takes its OpenAPI document and sends, for
every operation, a bounded number of generated requests (positive and negative data, a fixed
seed: the same run every time), once without credentials and once with a valid Entra bearer.
Every answer must: not be a 5xx, be JSON when it is an error, and conform to the document
(status code, content type, response schema).
"""

from __future__ import annotations

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.http.openapi import build_document
from service.http.routes import route_modules
from service.settings import load_settings
from tests.support.client_keys import ClientKeys
from tests.support.full_broker import PUBLIC_URL, SIGNER, bearer, full_toml
from tests.support.threaded import start_threaded

EXAMPLES = 25          # per operation and credential mode; ~20 operations → well under a minute
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(name="served", scope="module")
def _served(entra_emulator, acs_emulator, tmp_path_factory):
    entra_emulator.reset()
    tmp = tmp_path_factory.mktemp("schemathesis")
    keys = ClientKeys.create(tmp, SIGNER, PUBLIC_URL)
    settings = load_settings(full_toml(entra_emulator, acs_emulator, tmp / "keys", keys.path), {}, base_dir=tmp)
    server = start_threaded(lambda _url: create_app(settings), None)
    yield server.url, bearer(entra_emulator, lifetime=3600)
    server.stop()


# The document the app serves at /openapi.json (checked below), built at collection time so that
# every operation is its own test.
DOCUMENT = build_document(route_modules())
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_fuzzed_document_is_the_one_the_app_serves(served):
    url, _ = served
    assert requests.get(f"{url}/openapi.json", timeout=30).json() == DOCUMENT


def errors_are_json(response, case) -> None:
    if response.status_code >= 400:
        found = [v for k, v in response.headers.items() if k.lower() == "content-type"] or [[""]]
        media = found[0][0] if isinstance(found[0], list) else found[0]
        assert media.startswith("application/json"), f"{case.method} {case.path}: {response.status_code} {media}"
        body = response.json()
        assert isinstance(body.get("error"), str) and body["error"], body


@schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))
def test_every_operation_answers_generated_requests_as_documented(case, served):
    url, token = served
    with requests.Session() as session:
        for headers in ({}, {"Authorization": f"Bearer {token}"}):
            if "Authorization" in (case.headers or {}) and headers:
                continue                           # the case brings its own credentials
            response = case.call(base_url=url, session=session, headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS)
            errors_are_json(response, case)
