"""Step-up: was the caller's session opened by a sign-in that passed a second factor, and when.

Staff actions (custody approvals, relay operators) refuse a session whose ``amr`` lacks
``mfa``, and some refuse one whose MFA sign-in is older than a few minutes. Access tokens carry
``amr`` but no ``auth_time``, and a refresh keeps the session's ``amr``; the session's
``created_at`` is the moment the factors were proven, so it is the authentication time.
Cost: one read of ``sessions/{sid}``.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from shared.identity.sessions.sessions import active_session_doc
from shared.platform.auth import Principal
from shared.platform.errors import PermissionDenied


def active_session(deps: Any, principal: Principal) -> dict[str, Any] | None:
    """The caller's session if it is still active and theirs (None otherwise)."""
    if principal.kind != "user" or not principal.session_id:
        return None
    return active_session_doc(deps, user_id=principal.id, session_id=principal.session_id)


def require_mfa(deps: Any, principal: Principal, *, what: str,
                max_age_seconds: int | None = None) -> dt.datetime | None:
    """When the caller's MFA sign-in happened, or 403:

    - ``mfa_required``: the session was not opened with a second factor;
    - ``recent_mfa_required`` (with ``max_age_seconds``): that sign-in is older.

    ``what`` names the action in the message ("Custody actions")."""
    session = active_session(deps, principal)
    if session is None or "mfa" not in (session.get("amr") or ()):
        raise PermissionDenied(f"{what} need a session opened with a second factor: "
                               "sign in again with your authenticator.", code="mfa_required")
    signed_in = session.get("created_at")
    if max_age_seconds is not None:
        age = deps.clock.now() - signed_in if isinstance(signed_in, dt.datetime) else None
        if age is None or age > dt.timedelta(seconds=max_age_seconds):
            raise PermissionDenied(
                f"This action needs a sign-in with a second factor in the last "
                f"{max_age_seconds // 60} minutes: sign in again.", code="recent_mfa_required")
    return signed_in if isinstance(signed_in, dt.datetime) else None
