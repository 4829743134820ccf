"""The wallet method on the page: the payer signs in with their Payloom identity (email and
password, then the second factor when the account has one) and confirms; the payment is
``shared.payments.wallet_method.pay`` in one unit of work, as the API's ``/pay`` route does.

Identity is called in-process (``accounts.login``, ``challenges.verify_challenge``): its
per-account and per-IP guessing limits, lockout and MFA apply unchanged. The page keeps only
the access token, in an HttpOnly, SameSite=Strict cookie scoped to ``/pay`` (``__Secure-`` and
Secure in production) living ``wallet_cookie_seconds`` (10 min); the refresh token is never
kept. A pending MFA challenge id lives in a cookie of the same kind for its 5 minutes. The
session is revoked when the payment is made or the payer signs out, so nothing outlives the
checkout.
"""
from __future__ import annotations

import dataclasses

import flask

from shared.checkout.config import checkout_settings
from shared.identity import limits
from shared.identity.factors import challenges
from shared.identity.responses import MfaChallenge
from shared.identity.sessions import sessions
from shared.identity.sessions.authn import verify_access_token
from shared.identity.sessions.tokens import principal_scopes
from shared.identity.users import accounts, directory
from shared.payments import wallet_method
from shared.payments.models import PayWithWallet
from shared.platform import ratelimit
from shared.platform.auth import Principal
from shared.platform.errors import PayloomError
from shared.platform.ids import is_id
from shared.platform.router import client_ip
from shared.platform.uow import run_unit
from shared.web.config import get_web_settings

TOKEN_COOKIE, MFA_COOKIE = "payloom_pay_at", "payloom_pay_mfa"
PAY_LIMIT = ratelimit.Limit("checkout.wallet.pay", 30, 60)


@dataclasses.dataclass(frozen=True)
class Payer:
    user_id: str
    session_id: str
    email: str | None
    scopes: frozenset[str]

    def principal(self) -> Principal:
        return Principal(kind="user", id=self.user_id, tenant_id=self.user_id, scopes=self.scopes,
                         session_id=self.session_id)


def _secure(deps) -> bool:
    return get_web_settings().cookie_secure(deps.settings)


def cookie_name(deps, base: str) -> str:
    return f"__Secure-{base}" if _secure(deps) else base


def set_cookie(deps, response: flask.Response, base: str, value: str, max_age: int) -> None:
    response.set_cookie(cookie_name(deps, base), value, max_age=max_age, path="/pay",
                        httponly=True, samesite="Strict", secure=_secure(deps))


def clear_cookie(deps, response: flask.Response, base: str) -> None:
    response.delete_cookie(cookie_name(deps, base), path="/pay", httponly=True,
                           samesite="Strict", secure=_secure(deps))


def expired_cookie_header(deps, base: str) -> str:
    """A ``Set-Cookie`` value that deletes cookie ``base`` (for a rendered page's headers)."""
    from werkzeug.http import dump_cookie
    return dump_cookie(cookie_name(deps, base), "", max_age=0, expires=0, path="/pay",
                       httponly=True, samesite="Strict", secure=_secure(deps))


def payer(deps, request: flask.Request) -> Payer | None:
    """The signed-in payer of this browser, or None (no cookie, expired or revoked token)."""
    token = request.cookies.get(cookie_name(deps, TOKEN_COOKIE), "")
    if not token or len(token) > 4096:
        return None
    try:
        claims = verify_access_token(deps, token)
    except PayloomError:
        return None
    snap = directory.user_ref(deps.db, claims["sub"]).get()
    email = snap.get("email") if snap.exists else None
    return Payer(claims["sub"], claims["sid"], email, principal_scopes(claims))


def pending_challenge(deps, request: flask.Request) -> str | None:
    value = request.cookies.get(cookie_name(deps, MFA_COOKIE), "")
    return value if is_id(value, "mfc") else None


def sign_in(deps, request: flask.Request, email: str, password: str):
    """A ``TokenPair`` or an ``MfaChallenge`` (identity's own answers); 4xx errors as identity
    raises them (invalid_credentials, login_locked, rate_limited)."""
    ip = client_ip(request, deps.settings)
    ratelimit.enforce(deps.db, limits.LOGIN_IP, ip, deps.clock.now())
    if not email or not password or len(email) > 254 or len(password) > 1024:
        raise accounts.invalid_login()
    return run_unit(deps, lambda uow: accounts.login(
        uow, email=email.strip().lower(), password=password, ip=ip,
        user_agent=request.headers.get("User-Agent")))


def verify_mfa(deps, request: flask.Request, challenge_id: str, code: str):
    ip = client_ip(request, deps.settings)
    ratelimit.enforce(deps.db, limits.MFA_VERIFY_IP, ip, deps.clock.now())
    code = "".join((code or "").split())[:64]
    return run_unit(deps, lambda uow: challenges.verify_challenge(
        uow, challenge_id=challenge_id, code=code, ip=ip,
        user_agent=request.headers.get("User-Agent")))


def is_challenge(answer) -> bool:
    return isinstance(answer, MfaChallenge)


def keep_token(deps, response: flask.Response, pair) -> None:
    """The signed-in payer's access token in its cookie (never longer than the token lives);
    the pending challenge, if any, is forgotten."""
    max_age = max(1, min(int(pair.expires_in), checkout_settings(deps).wallet_cookie_seconds))
    clear_cookie(deps, response, MFA_COOKIE)
    set_cookie(deps, response, TOKEN_COOKIE, pair.access_token, max_age)


def pay(deps, who: Payer, intent_id: str, secret: str) -> None:
    ratelimit.enforce(deps.db, PAY_LIMIT, who.user_id, deps.clock.now())
    body = PayWithWallet(client_secret=secret)
    run_unit(deps, lambda uow: wallet_method.pay(uow, who.principal(), intent_id, body))


def end_session(deps, who: Payer, reason: str) -> None:
    """Revoke the page's session (paid, or signed out); an already revoked one is fine."""
    try:
        run_unit(deps, lambda uow: sessions.revoke_session(
            uow, user_id=who.user_id, session_id=who.session_id, reason=reason))
    except PayloomError:
        pass
