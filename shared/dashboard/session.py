"""Signing a member in and out of the dashboard through the identity services, in-process.

The same services and limits as ``/v1/auth`` (ADR 0010): password login with its lockout and
per-account budget (counted in the login's own commit), the MFA challenge, refresh-token
rotation with reuse detection, and revocation on sign-out. Only the transport differs: the
tokens travel in the dashboard's cookies (``cookies``) instead of a JSON body, so a script in
the page can never read them.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import ValidationError

from shared.dashboard import cookies
from shared.identity import limits
from shared.identity.config import identity_settings
from shared.identity.factors import challenges
from shared.identity.models import LoginRequest, MfaVerifyRequest
from shared.identity.responses import MfaChallenge, TokenPair
from shared.identity.sessions import sessions
from shared.identity.sessions.authn import verify_access_token
from shared.identity.sessions.tokens import principal_scopes
from shared.identity.users import accounts
from shared.platform.auth import Principal
from shared.platform.errors import AuthenticationError
from shared.platform.ratelimit import enforce
from shared.platform.router import client_ip
from shared.platform.uow import run_unit


def _who(ctx) -> tuple[str, str | None]:
    return client_ip(ctx.request, ctx.deps.settings), ctx.request.headers.get("User-Agent")


def keep_tokens(jar: cookies.Jar, deps, pair: TokenPair) -> None:
    jar.set(cookies.ACCESS, pair.access_token, pair.expires_in)
    jar.set(cookies.REFRESH, pair.refresh_token, identity_settings(deps).refresh_token_ttl_seconds)
    jar.clear(cookies.CHALLENGE)


def sign_in(ctx, jar: cookies.Jar, identifier: str, password: str) -> TokenPair | MfaChallenge:
    """Password sign-in: the tokens (kept in cookies), or an MFA challenge (its id kept)."""
    ip, agent = _who(ctx)
    enforce(ctx.deps.db, limits.LOGIN_IP, ip, ctx.now)
    field = "email" if "@" in identifier else "username"
    try:
        body = LoginRequest.model_validate({field: identifier, "password": password})
    except ValidationError:
        raise accounts.invalid_login() from None
    answer = run_unit(ctx.deps, lambda uow: accounts.login(
        uow, email=body.email, username=body.username, password=body.password, ip=ip,
        user_agent=agent))
    if isinstance(answer, MfaChallenge):
        jar.set(cookies.CHALLENGE, answer.challenge_id, answer.expires_in)
    else:
        keep_tokens(jar, ctx.deps, answer)
    return answer


def verify_code(ctx, jar: cookies.Jar, code: str) -> TokenPair:
    """Complete the pending MFA challenge (its id from the cookie) with a TOTP or backup code."""
    ip, agent = _who(ctx)
    enforce(ctx.deps.db, limits.MFA_VERIFY_IP, ip, ctx.now)
    try:
        body = MfaVerifyRequest.model_validate(
            {"challenge_id": cookies.read(ctx.deps, ctx.request, cookies.CHALLENGE),
             "code": code.strip()})
    except ValidationError:
        raise AuthenticationError("This sign-in challenge is no longer valid; sign in again.",
                                  code="mfa_challenge_invalid") from None
    pair = run_unit(ctx.deps, lambda uow: challenges.verify_challenge(
        uow, challenge_id=body.challenge_id, code=body.code, ip=ip, user_agent=agent))
    keep_tokens(jar, ctx.deps, pair)
    return pair


@dataclasses.dataclass(frozen=True)
class SignedIn:
    principal: Principal        # the user, outside any merchant
    claims: dict[str, Any]


def current(ctx, jar: cookies.Jar) -> SignedIn | None:
    """The signed-in member: the access token if it is valid and its session active, else a
    transparent refresh with the refresh token (rotated; reuse revokes the session). None
    when neither works (the cookies are cleared)."""
    deps = ctx.deps
    ip, agent = _who(ctx)
    access = cookies.read(deps, ctx.request, cookies.ACCESS)
    claims = None
    if access:
        try:
            claims = verify_access_token(deps, access)
        except AuthenticationError:
            claims = None
    if claims is None:
        refresh = cookies.read(deps, ctx.request, cookies.REFRESH)
        if not refresh:
            if access:
                jar.clear(cookies.ACCESS)
            return None
        enforce(deps.db, limits.REFRESH_IP, ip, ctx.now)
        try:
            pair = run_unit(deps, lambda uow: sessions.refresh_session(uow, refresh, ip=ip,
                                                                       user_agent=agent))
            claims = verify_access_token(deps, pair.access_token)
        except AuthenticationError:
            jar.clear(*cookies.SESSION_COOKIES)
            return None
        keep_tokens(jar, deps, pair)
    user = Principal(kind="user", id=claims["sub"], tenant_id=claims["sub"],
                     scopes=principal_scopes(claims), session_id=claims["sid"], ip=ip)
    return SignedIn(user, claims)


def sign_out(ctx, jar: cookies.Jar, who: SignedIn | None) -> None:
    """Revoke the session (its refresh and access tokens stop working) and forget the cookies."""
    if who is not None and who.principal.session_id:
        enforce(ctx.deps.db, limits.LOGOUT_PRINCIPAL, who.principal.id, ctx.now)
        run_unit(ctx.deps, lambda uow: sessions.revoke_session(
            uow, user_id=who.principal.id, session_id=who.principal.session_id, reason="logout"))
    jar.clear(*cookies.SESSION_COOKIES)
