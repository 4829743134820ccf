"""Token and session routes: refresh, logout, JWKS, and the user's own sessions."""
from __future__ import annotations

from shared.identity import limits
from shared.identity.sessions import sessions
from shared.identity.http.api import accounts_api, auth_api
from shared.identity.sessions.keys import get_keyset
from shared.identity.models import RefreshRequest
from shared.identity.resources import Session
from shared.identity.responses import JwkSet, TokenPair
from shared.identity.sessions.tokens import no_store
from shared.platform.pagination import ListQuery, ListResponse
from shared.platform.router import PUBLIC, Context, Result


@auth_api.post("/refresh", body=RefreshRequest, response=TokenPair, auth=PUBLIC, idempotent=False,
               rate_limits=[(limits.REFRESH_IP, "ip")])
def refresh(ctx: Context):
    """Exchange a refresh token for a new pair (rotation; reuse revokes the session)."""
    return no_store(sessions.refresh_session(ctx.uow, ctx.body.refresh_token, ip=ctx.ip,
                                             user_agent=ctx.request.headers.get("User-Agent")))


@auth_api.post("/logout", status=204, auth=("user",), idempotent=False,
               rate_limits=[(limits.LOGOUT_PRINCIPAL, "principal")])
def logout(ctx: Context):
    """Revoke the current session (its refresh and access tokens stop working)."""
    if ctx.principal.session_id:
        sessions.revoke_session(ctx.uow, user_id=ctx.principal.id,
                                session_id=ctx.principal.session_id, reason="logout")
    return None


@auth_api.get("/.well-known/jwks.json", response=JwkSet, auth=PUBLIC)
def jwks(ctx: Context):
    """Public keys that verify Payloom access tokens (RFC 7517)."""
    return Result(get_keyset(ctx.deps).jwks(ctx.now),
                  headers={"Cache-Control": "public, max-age=300"})


@accounts_api.get("/sessions", query=ListQuery, response=ListResponse[Session], auth=("user",),
                  rate_limits=[(limits.ME_READ, "principal")])
def list_sessions(ctx: Context):
    """The signed-in user's active sessions, newest first (``current`` marks this one)."""
    return sessions.list_sessions(ctx.deps, user_id=ctx.principal.id, params=ctx.query,
                                  current_session_id=ctx.principal.session_id)


@accounts_api.get("/sessions/{session_id}", response=Session, auth=("user",),
                  rate_limits=[(limits.ME_READ, "principal")])
def get_session(ctx: Context, session_id: str):
    """One of the user's sessions."""
    return sessions.get_session(ctx.deps, user_id=ctx.principal.id, session_id=session_id,
                                current_session_id=ctx.principal.session_id)


@accounts_api.delete("/sessions/{session_id}", response=Session, auth=("user",),
                     rate_limits=[(limits.ME_WRITE, "principal")])
def revoke_session(ctx: Context, session_id: str):
    """Sign a session out (another user's session is a 404)."""
    return sessions.revoke_session(ctx.uow, user_id=ctx.principal.id, session_id=session_id,
                                   reason="user_revoked",
                                   current_session_id=ctx.principal.session_id)
