"""Identity's authenticator: users' access tokens and API keys.

Every function that accepts users or API keys names it in its ``main.py``:
``boot("wallet", authenticators=[identity_authenticator])``.

* ``Authorization: Bearer sk_test_…`` / ``sk_live_…`` → ``Principal(kind="api_key", id=key id,
  tenant_id=owner user id, scopes=key scopes, livemode=key mode)``;
* ``Authorization: Bearer <JWT>`` → ``Principal(kind="user", id=user id, tenant_id=user id,
  scopes=token scopes, session_id=sid)``; the session must still be active.

Anything else is not ours (returns None) so the platform's own service credential still works.
"""
from __future__ import annotations

from typing import Any, Mapping

from shared.identity.apikeys.service import authenticate_api_key, looks_like_api_key
from shared.identity.sessions.sessions import session_is_active
from shared.identity.sessions.tokens import decode_access_token, principal_scopes, reject
from shared.platform.auth import Principal
from shared.platform.config import Settings
from shared.platform.deps import get_deps


def verify_access_token(deps, token: str, *, check_session: bool = True) -> dict[str, Any]:
    """Verify an access token and return its claims; raises ``InvalidToken`` (401).

    With ``check_session`` (the default) the session must still be active: a revoked session
    (logout, revocation, refresh-token reuse, password reset) invalidates its access tokens.
    """
    claims = decode_access_token(deps, token)
    if check_session and not session_is_active(deps, claims["sid"], claims["sub"]):
        raise reject("session not active", sid=claims["sid"])
    return claims


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def identity_authenticator(token: str, headers: Mapping[str, str],
                           settings: Settings) -> Principal | None:
    if looks_like_api_key(token):
        return authenticate_api_key(get_deps(), token)
    if _looks_like_jwt(token):
        claims = verify_access_token(get_deps(), token)
        return Principal(kind="user", id=claims["sub"], tenant_id=claims["sub"],
                         scopes=principal_scopes(claims), session_id=claims["sid"])
    return None

