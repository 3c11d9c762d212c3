"""The ACS emulator's `web.AppKey`s, in one place. TEST ONLY."""

from __future__ import annotations

from aiohttp import web

from .entra_check import EntraKeys
from .state import AcsState

STATE = web.AppKey("acs_state", AcsState)
ENTRA_KEYS = web.AppKey("acs_entra_keys", EntraKeys)
TEAMS = web.RequestKey("acs_teams", dict)  # the Teams exchange's app/oid/tid, for the request log
