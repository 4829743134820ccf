"""MFA routes: TOTP enrolment and removal, backup codes, and completing a login challenge."""
from __future__ import annotations

from shared.identity import limits, mfa
from shared.identity.api import accounts_api, auth_api
from shared.identity.models import CodeRequest, MfaVerifyRequest
from shared.identity.tokens import no_store
from shared.platform.router import PUBLIC, Context


@auth_api.post("/mfa/verify", body=MfaVerifyRequest, auth=PUBLIC, idempotent=False,
               rate_limits=[(limits.MFA_VERIFY_IP, "ip")])
def verify(ctx: Context):
    """Complete a login's ``mfa_challenge`` with a TOTP or backup code: returns the tokens."""
    b = ctx.body
    return no_store(mfa.verify_challenge(ctx.uow, challenge_id=b.challenge_id, code=b.code,
                                         method=b.method, ip=ctx.ip,
                                         user_agent=ctx.request.headers.get("User-Agent")))


@accounts_api.get("/mfa", auth=("user",), rate_limits=[(limits.ME_READ, "principal")])
def status(ctx: Context):
    """Which second factors are on, and how many backup codes remain."""
    return mfa.status(ctx.deps, ctx.principal.id)


@accounts_api.post("/mfa/totp", auth=("user",), idempotent=False,
                   rate_limits=[(limits.MFA_MANAGE, "principal")])
def begin_totp(ctx: Context):
    """Start TOTP enrolment: secret, otpauth:// URI and a QR code (PNG data URI)."""
    return mfa.begin_totp(ctx.deps, ctx.principal.id)


@accounts_api.post("/mfa/totp/confirm", body=CodeRequest, auth=("user",), idempotent=False,
                   rate_limits=[(limits.MFA_MANAGE, "principal")])
def confirm_totp(ctx: Context):
    """Turn TOTP on with a current code; returns 10 backup codes, shown only this once."""
    return mfa.confirm_totp(ctx.deps, ctx.principal.id, ctx.body.code)


@accounts_api.post("/mfa/totp/disable", body=CodeRequest, auth=("user",), idempotent=False,
                   rate_limits=[(limits.MFA_MANAGE, "principal")])
def disable_totp(ctx: Context):
    """Turn MFA off (needs a current TOTP or an unused backup code)."""
    return mfa.disable_totp(ctx.deps, ctx.principal.id, ctx.body.code)


@accounts_api.post("/mfa/backup_codes", body=CodeRequest, auth=("user",), idempotent=False,
                   rate_limits=[(limits.MFA_MANAGE, "principal")])
def regenerate_backup_codes(ctx: Context):
    """Replace all backup codes (needs a current TOTP or backup code); shown only once."""
    return mfa.regenerate_backup_codes(ctx.deps, ctx.principal.id, ctx.body.code)
