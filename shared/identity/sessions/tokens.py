"""Access tokens: short-lived JWTs (RFC 9068 shape) signed by the newest key of the key set.

Claims: ``iss``, ``aud``, ``sub`` (user id), ``sid`` (session id), ``scope`` (space separated),
``amr`` (RFC 8176 methods), ``client_id`` (RFC 9068 2.2: the app the session was issued to),
``iat``, ``nbf``, ``exp``, ``jti``; header ``kid``, ``typ: at+jwt``.

Token responses must not be cached (RFC 6749 5.1): routes that return tokens wrap them with
``no_store`` (``Cache-Control: no-store``, ``Pragma: no-cache``).

Verification is strict and explicit:
* the header must name a ``kid`` we hold, and its ``alg`` must be exactly that key's alg (the
  allow-list is per kid: ``none``, ``HS256`` with the public key as secret, or ES256 on an
  EdDSA kid never get as far as a signature check);
* signature, ``iss`` and ``aud`` are checked by PyJWT with ``algorithms=[key.alg]``;
* ``exp``/``nbf``/``iat`` are checked here against ``deps.clock`` (tests freeze time), with
  ``clock_skew_seconds`` of leeway;
* then the session named by ``sid`` must still be active: ``sessions.authn.verify_access_token``
  adds that check (this module knows nothing of sessions).
Every failure is the same 401 ``invalid_token`` to the caller; the reason goes to the log.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

import jwt

from shared.identity.config import identity_settings
from shared.identity.sessions.keys import get_keyset
from shared.platform.errors import AuthenticationError
from shared.platform.ids import new_id
from shared.platform.logs import get_logger, log

_log = get_logger(__name__)
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "scope", "iat", "nbf", "exp", "jti")


class InvalidToken(AuthenticationError):
    code = "invalid_token"


NO_STORE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def no_store(body: Any, status: int | None = None):
    """A route result carrying tokens: never cached by browsers or proxies (RFC 6749 5.1)."""
    from shared.platform.router import Result
    if isinstance(body, Result):
        return Result(body.body, body.status or status, {**body.headers, **NO_STORE_HEADERS})
    return Result(body, status, dict(NO_STORE_HEADERS))


def issue_access_token(deps, *, user_id: str, session_id: str, scopes: Iterable[str] = ("*",),
                       amr: Iterable[str] = ("pwd",), client_id: str | None = None) -> str:
    settings = identity_settings(deps)
    now = deps.clock.now()
    key = get_keyset(deps).signing_key(now)
    iat = int(now.timestamp())
    claims = {
        "iss": settings.issuer, "aud": settings.audience, "sub": user_id, "sid": session_id,
        "scope": " ".join(sorted(set(scopes))), "amr": list(amr),
        "client_id": client_id or settings.default_client_id,
        "iat": iat, "nbf": iat, "exp": iat + settings.access_token_ttl_seconds,
        "jti": new_id("jti", 22),
    }
    return jwt.encode(claims, key.private_key, algorithm=key.alg,
                      headers={"kid": key.kid, "typ": "at+jwt"})


def reject(reason: str, **fields) -> InvalidToken:
    """The one 401 every failure gets; the reason goes to the log only."""
    log(_log, logging.INFO, "access token rejected", reason=reason, **fields)
    return InvalidToken("The access token is invalid or expired.")


def decode_access_token(deps, token: str) -> dict[str, Any]:
    """Signature, header and claim checks only (no session lookup)."""
    settings = identity_settings(deps)
    now = deps.clock.now()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise reject("malformed") from None
    kid, alg = header.get("kid"), header.get("alg")
    if not isinstance(kid, str) or not isinstance(alg, str):
        raise reject("missing kid or alg")
    key = get_keyset(deps).verification_key(kid, now)
    if key is None:
        raise reject("unknown kid", kid=kid[:40])
    if alg != key.alg:  # per-kid allow-list: exactly one algorithm
        raise reject("algorithm not allowed for kid", alg=alg[:20], kid=kid)
    try:
        claims = jwt.decode(
            token, key.public_key, algorithms=[key.alg], audience=settings.audience,
            issuer=settings.issuer,
            options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_nbf": False,
                     "verify_iat": False, "verify_signature": True, "verify_aud": True,
                     "verify_iss": True})
    except jwt.PyJWTError as exc:
        raise reject(type(exc).__name__) from None
    t = now.timestamp()
    skew = settings.clock_skew_seconds
    try:
        exp, nbf, iat = float(claims["exp"]), float(claims["nbf"]), float(claims["iat"])
    except (TypeError, ValueError):
        raise reject("non-numeric time claim") from None
    if exp <= t - skew:
        raise reject("expired")
    if nbf > t + skew or iat > t + skew:
        raise reject("not yet valid")
    if not all(isinstance(claims[c], str) and claims[c] for c in ("sub", "sid", "scope", "jti")):
        raise reject("malformed claims")
    return claims


def principal_scopes(claims: dict[str, Any]) -> frozenset[str]:
    return frozenset(s for s in str(claims.get("scope", "")).split() if s)
