"""The one way every sign-in method ends: a second-factor challenge or a session.

Password, phone OTP, SIWE and social sign-in all prove a first factor and then call
``finish_sign_in``. If the account has a second factor on (``users.mfa_enabled``), the answer is
an ``mfa_challenge`` and no tokens, whatever the first factor was; ``POST /v1/auth/mfa/verify``
completes it. Keeping this in one place is what makes "MFA on every sign-in method" hold for
methods added later.
"""
from __future__ import annotations

from typing import Any, Iterable

from shared.identity.factors.challenges import create_challenge
from shared.identity.responses import MfaChallenge, TokenPair
from shared.identity.sessions.sessions import open_session
from shared.platform.errors import PermissionDenied


def finish_sign_in(uow, user: dict[str, Any], *, amr: Iterable[str], ip: str | None,
                   user_agent: str | None) -> TokenPair | MfaChallenge:
    """Tokens for ``user``, or an MFA challenge when a second factor is enabled (in ``uow``)."""
    if user.get("status", "active") != "active":
        raise PermissionDenied("This account is disabled.", code="account_disabled")
    if user.get("mfa_enabled"):
        return create_challenge(uow, user_id=user["id"], amr=list(amr), ip=ip,
                                user_agent=user_agent)
    return open_session(uow, user_id=user["id"], amr=amr, ip=ip, user_agent=user_agent)

