"""The dashboard's cookies: the session's two tokens, a pending MFA challenge, the merchant and
the mode the member is looking at.

Every cookie is HttpOnly (no script reads it), SameSite=Strict (another site's page cannot make
the browser send it, even on a top-level link) and scoped to ``/dashboard`` (the API and the
hosted payment page never receive it); Secure with the ``__Secure-`` prefix in production.
The refresh token lives as long as the identity service lets it idle (30 days); the access
token as long as it is valid (1 hour); the challenge as long as a challenge (5 minutes).
"""
from __future__ import annotations

import flask

from shared.web.config import get_web_settings

PATH = "/dashboard"
ACCESS, REFRESH, CHALLENGE, MERCHANT, MODE = "dash_at", "dash_rt", "dash_mfa", "dash_mch", "dash_mode"
SESSION_COOKIES = (ACCESS, REFRESH, CHALLENGE)


def secure(deps) -> bool:
    return get_web_settings().cookie_secure(deps.settings)


def name(deps, base: str) -> str:
    return f"__Secure-{base}" if secure(deps) else base


def read(deps, request: flask.Request, base: str) -> str:
    value = request.cookies.get(name(deps, base), "")
    return value if 0 < len(value) <= 4096 else ""


class Jar:
    """Cookies to set or clear on whatever response the page ends with."""

    def __init__(self, deps):
        self.deps = deps
        self.changes: dict[str, tuple[str, int | None]] = {}   # base name -> (value, max_age)

    def set(self, base: str, value: str, max_age: int | None) -> None:
        self.changes[base] = (value, max_age)

    def clear(self, *bases: str) -> None:
        for base in bases:
            self.changes[base] = ("", 0)

    def apply(self, response: flask.Response) -> flask.Response:
        for base, (value, max_age) in self.changes.items():
            response.set_cookie(name(self.deps, base), value, max_age=max_age, path=PATH,
                                secure=secure(self.deps), httponly=True, samesite="Strict")
        return response
