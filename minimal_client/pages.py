"""HTML pages from the small templates in `templates/` (string.Template, every value escaped).

The pages hold no inline script or style: behaviour is `static/app.js`, looks `static/app.css`,
so the CSP can say `script-src 'self'; style-src 'self'`.
"""

from __future__ import annotations

import json
from functools import cache
from html import escape
from pathlib import Path
from string import Template
from typing import Any

from .config import ClientConfig

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _fill(template: str, /, **values: str) -> str:
    """Substitute already-safe HTML fragments (callers escape plain values)."""
    return _template(template).substitute(values)


def _cards(cfg: ClientConfig) -> str:
    cards = [
        dict(key="teams", action="/action/teams", title="Teams token",
             description="Acquires your Entra token for ACS (Teams scopes, incremental consent) and "
                         "the broker token, then calls GET /api/token/teams.",
             label="Get Teams token"),
    ]
    for name in cfg.obo_names:
        cards.append(dict(key=f"obo-{name}", action=f"/action/obo/{name}",
                          title=f"{name.capitalize()} token (OBO)",
                          description=f"Calls POST /api/token/obo/{name}: the broker exchanges your "
                                      "token on-behalf-of you.",
                          label=f"Get {name} token"))
    cards.append(dict(key="acs", action="/action/acs-identity", title="ACS identity token",
                      description="Calls POST /api/user (creates or finds your ACS identity), then "
                                  "GET /api/token.",
                      label="Get ACS identity token"))
    return "\n".join(_fill("card.html", **{k: escape(v) for k, v in c.items()}) for c in cards)


def _flash(flash: dict[str, Any] | None) -> str:
    if not flash:
        return ""
    detail = json.dumps(flash.get("detail"), indent=2, ensure_ascii=False)
    return _fill("flash.html", title=escape(str(flash.get("title", "Error"))), detail=escape(detail))


def _layout(cfg: ClientConfig, body: str, *, csrf: str = "", flash: dict[str, Any] | None = None) -> str:
    return _fill("layout.html", body=body, csrf=escape(csrf), flash=_flash(flash),
                 authority=escape(cfg.authority_url), broker_url=escape(cfg.broker_url))


def signed_out(cfg: ClientConfig, *, flash: dict[str, Any] | None = None) -> str:
    return _layout(cfg, _fill("signed_out.html"), flash=flash)


def signed_in(cfg: ClientConfig, user: dict[str, Any], csrf: str,
              *, flash: dict[str, Any] | None = None) -> str:
    body = _fill("signed_in.html", csrf=escape(csrf), cards=_cards(cfg),
                 name=escape(str(user.get("name") or user.get("username") or "(no name claim)")),
                 username=escape(str(user.get("username") or "")),
                 oid=escape(str(user.get("oid") or "")), tid=escape(str(user.get("tid") or "")))
    return _layout(cfg, body, csrf=csrf, flash=flash)
