"""Every web.AppKey of the minimal client."""

from __future__ import annotations

from aiohttp import web

from .broker import BrokerClient
from .config import ClientConfig
from .identity import Identity
from .sessions import Handoffs, SessionStore

CONFIG = web.AppKey("config", ClientConfig)
SESSIONS = web.AppKey("sessions", SessionStore)
IDENTITY = web.AppKey("identity", Identity)
BROKER = web.AppKey("broker", BrokerClient)
HANDOFFS = web.AppKey("handoffs", Handoffs)
