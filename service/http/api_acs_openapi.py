"""OpenAPI path items of the ACS routes (service/http/api_acs.py)."""

from __future__ import annotations

from typing import Any

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_EXPIRES = {"type": "string", "format": "date-time",
            "description": "ISO 8601 UTC, seconds precision, e.g. 2026-11-23T10:00:00Z"}
_TOKEN: dict[str, Any] = {"type": "object", "required": ["token", "expiresOn"],
          "properties": {"token": {"type": "string"}, "expiresOn": _EXPIRES}}
_IDENTITY = {"type": "object", "required": ["acsUserIdentity"],
             "properties": {"acsUserIdentity": {"type": "string", "example": "8:acs:<resource>_<guid>"}}}
_BEARER = {
    "401": {"description": "No credentials, or invalid_token (WWW-Authenticate: Bearer)", **_ERROR},
    "403": {"description": "insufficient_scope, or access_denied (app or tenant refused)", **_ERROR},
}
_DOWNSTREAM = {
    "502": {"description": "ACS failed or refused the broker's credentials (bad_gateway)", **_ERROR},
    "503": {"description": "ACS, Entra keys or the store unavailable (Retry-After when known)", **_ERROR},
    "504": {"description": "ACS did not answer within acs.timeout", **_ERROR},
}
_TEAMS_HEADER = {"name": "teams-user-aad-token", "in": "header", "required": True,
                 "description": "The user's Entra access token for ACS (aud https://auth.msft.communication."
                                "azure.com) with Teams.ManageCalls and Teams.ManageChats; an empty or "
                                "blank value is refused like a missing header (400 invalid_request)",
                 "schema": {"type": "string", "minLength": 1, "pattern": "\\S"}}


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _teams_operation(method: str) -> dict:
    return {
        "summary": "Exchange the user's Teams token for an ACS Teams-user access token",
        "operationId": f"acsTeamsToken{method}", "tags": ["acs"], "security": [{"entraBearer": []}],
        "parameters": [_TEAMS_HEADER],
        "responses": {
            "201": _json("ACS access token; expiresOn never later than the Teams token's exp", _TOKEN),
            "400": {"description": "invalid_request (header missing), or invalid_teams_token "
                                   "(invalid, expired, malformed, another user's)", **_ERROR},
            **_BEARER,
            "403": {"description": "insufficient_scope / access_denied (Bearer), or invalid_teams_token "
                                   "(a Teams scope missing, app not allowed)", **_ERROR},
            **_DOWNSTREAM,
        },
    }


OPENAPI = {
    "/api/token/teams": {"get": _teams_operation("Get"), "post": _teams_operation("Post")},
    "/api/token": {"get": {
        "summary": "An ACS access token for the caller's ACS identity (acs.identity_scopes)",
        "description": "The same still-valid token (with its true expiresOn) while it has at least "
                       "half its lifetime left; then a new one.",
        "tags": ["acs"], "security": [{"entraBearer": []}],
        "responses": {
            "201": _json("ACS access token", {**_TOKEN, "required": ["token", "expiresOn", "user"],
                                              "properties": {**_TOKEN["properties"], "user": {
                                                  "type": "object", "required": ["communicationUserId", "id", "rawId"],
                                                  "properties": {"communicationUserId": {"type": "string"},
                                                                 "id": {"type": "string"},
                                                                 "rawId": {"type": "string"}}}}}),
            **_BEARER,
            "404": {"description": "not_found: the user has no ACS identity yet", **_ERROR},
            **_DOWNSTREAM,
        },
    }},
    "/api/user": {
        "post": {"summary": "Create the caller's ACS identity (keyed by tid+oid) unless it exists",
                 "tags": ["acs"], "security": [{"entraBearer": []}],
                 "responses": {"201": _json("Created", _IDENTITY), "200": _json("Already existed", _IDENTITY),
                               **_BEARER, **_DOWNSTREAM}},
        "get": {"summary": "The caller's ACS identity", "tags": ["acs"], "security": [{"entraBearer": []}],
                "responses": {"200": _json("The identity", _IDENTITY),
                              "404": {"description": "not_found: no identity yet", **_ERROR},
                              **_BEARER, "503": _DOWNSTREAM["503"]}},
        "delete": {"summary": "Delete the caller's ACS identity at ACS and its mapping",
                   "tags": ["acs"], "security": [{"entraBearer": []}],
                   "responses": {"204": {"description": "Deleted (also when there was none)"},
                                 **_BEARER, **_DOWNSTREAM}},
    },
}
