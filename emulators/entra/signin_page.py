"""The HTML pages of /authorize: the user picker, form_post and errors. TEST ONLY."""

from __future__ import annotations

from html import escape

from .model import User

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;color:#1b1b1b}"
          ".banner{background:#fde7e9;padding:.5rem 1rem;border-radius:4px}"
          "button{display:block;width:100%;margin:.5rem 0;padding:.75rem;font-size:1rem;cursor:pointer}")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>"
            "<p class=\"banner\">Entra ID emulator &mdash; TEST ONLY</p>"
            f"{body}</body></html>")


def _hidden(params: dict[str, str]) -> str:
    return "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in params.items())


def signin_page(action: str, params: dict[str, str], users: list[User], app_name: str,
                notice: str = "") -> str:
    """One form per user; each posts the original authorize parameters plus `signin_user`."""
    forms = []
    for u in users:
        forms.append(
            f'<form method="post" action="{escape(action)}" id="signin-{escape(u.username_prefix)}">'
            f'{_hidden(params)}<input type="hidden" name="signin_user" value="{escape(u.oid)}">'
            f'<button type="submit" data-testid="signin-{escape(u.username_prefix)}">'
            f'Sign in as {escape(u.name)} <small>({escape(u.upn)})</small></button></form>')
    note = f'<p role="alert">{escape(notice)}</p>' if notice else ""
    return _page("Sign in", f"<h1>Pick an account</h1><p>to continue to {escape(app_name)}</p>{note}"
                            + "".join(forms))


def form_post_page(redirect_uri: str, params: dict[str, str]) -> str:
    body = (f'<form method="post" action="{escape(redirect_uri)}" id="form_post">{_hidden(params)}'
            '<noscript><button type="submit">Continue</button></noscript></form>'
            '<script>document.getElementById("form_post").submit()</script>')
    return _page("Working...", body)


def error_page(code: int, message: str) -> str:
    return _page("Sign in error", f"<h1>Sorry, but we're having trouble signing you in.</h1>"
                                  f"<p id=\"error\">AADSTS{code}: {escape(message)}</p>")
