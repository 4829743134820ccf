"""MFA routes: TOTP enrolment and removal, backup codes, and completing a login challenge."""
from __future__ import annotations

from pydantic import Field, field_validator

from shared.identity import limits
from shared.identity.factors import challenges, mfa, sms
from shared.identity.http.api import accounts_api, auth_api
from shared.identity.models import CodeRequest, MfaVerifyRequest
from shared.identity.responses import (MfaBackupCodes, MfaSmsEnrollment, MfaSmsSent, MfaStatus,
                                       TokenPair, TotpEnrollment)
from shared.identity.sessions.tokens import no_store
from shared.platform.ids import is_id
from shared.platform.models import RequestModel
from shared.platform.router import PUBLIC, Context


@auth_api.post("/mfa/verify", body=MfaVerifyRequest, response=TokenPair, auth=PUBLIC,
               idempotent=False, rate_limits=[(limits.MFA_VERIFY_IP, "ip")])
def verify(ctx: Context):
    """Complete a login's ``mfa_challenge`` with a TOTP or backup code: returns the tokens."""
    b = ctx.body
    return no_store(challenges.verify_challenge(ctx.uow, challenge_id=b.challenge_id, code=b.code,
                                         method=b.method, ip=ctx.ip,
                                         user_agent=ctx.request.headers.get("User-Agent")))


@accounts_api.get("/mfa", response=MfaStatus, auth=("user",),
                  rate_limits=[(limits.ME_READ, "principal")])
def status(ctx: Context):
    """Which second factors are on, and how many backup codes remain."""
    return mfa.status(ctx.deps, ctx.principal.id)


# Enrolment and backup codes are not idempotent: a retry starts over with a new seed or new
# codes. Their shown-once fields are declared anyway, so they could never be stored or replayed.
@accounts_api.post("/mfa/totp", response=TotpEnrollment, auth=("user",), idempotent=False,
                   secret_fields=TotpEnrollment.SHOWN_ONCE,
                   rate_limits=[(limits.MFA_MANAGE, "principal")])
def begin_totp(ctx: Context):
    """Start TOTP enrolment: secret, otpauth:// URI and a QR code (PNG data URI)."""
    return mfa.begin_totp(ctx.uow, ctx.principal.id)


@accounts_api.post("/mfa/totp/confirm", body=CodeRequest, response=MfaBackupCodes,
                   auth=("user",), idempotent=False, secret_fields=MfaBackupCodes.SHOWN_ONCE,
                   rate_limits=[(limits.MFA_MANAGE, "principal")])
def confirm_totp(ctx: Context):
    """Turn TOTP on with a current code; returns 10 backup codes, shown only this once."""
    return mfa.confirm_totp(ctx.uow, ctx.principal.id, ctx.body.code)


@accounts_api.post("/mfa/totp/disable", body=CodeRequest, response=MfaStatus, auth=("user",),
                   idempotent=False, rate_limits=[(limits.MFA_MANAGE, "principal")])
def disable_totp(ctx: Context):
    """Turn MFA off (needs a current TOTP or an unused backup code)."""
    return mfa.disable_totp(ctx.uow, ctx.principal.id, ctx.body.code)


@accounts_api.post("/mfa/backup_codes", body=CodeRequest, response=MfaBackupCodes,
                   auth=("user",), idempotent=False, secret_fields=MfaBackupCodes.SHOWN_ONCE,
                   rate_limits=[(limits.MFA_MANAGE, "principal")])
def regenerate_backup_codes(ctx: Context):
    """Replace all backup codes (needs a current TOTP or backup code); shown only once."""
    return mfa.regenerate_backup_codes(ctx.uow, ctx.principal.id, ctx.body.code)


class ChallengeRequest(RequestModel):
    challenge_id: str = Field(..., min_length=1, max_length=64)

    @field_validator("challenge_id")
    @classmethod
    def _challenge_id(cls, v):
        if not is_id(v, "mfc"):  # it names a Firestore document
            raise ValueError("not an MFA challenge id")
        return v


@auth_api.post("/mfa/sms", body=ChallengeRequest, response=MfaSmsSent, auth=PUBLIC, status=202,
               idempotent=False, rate_limits=[(limits.MFA_SMS_IP, "ip")])
def send_sms_code(ctx: Context):
    """Text the sign-in challenge's code to the account's verified phone (SMS factor)."""
    return challenges.send_sms_code(ctx.uow, ctx.body.challenge_id)


@accounts_api.post("/mfa/sms", response=MfaSmsEnrollment, auth=("user",), status=202,
                   idempotent=False, rate_limits=[(limits.MFA_MANAGE, "principal")])
def begin_sms(ctx: Context):
    """Text a code to the verified phone: confirm it to turn SMS on (or to turn it off)."""
    return sms.begin(ctx.uow, ctx.principal.id)


@accounts_api.post("/mfa/sms/confirm", body=CodeRequest, response=MfaStatus, auth=("user",),
                   idempotent=False, rate_limits=[(limits.MFA_MANAGE, "principal")])
def confirm_sms(ctx: Context):
    """Turn the SMS second factor on with the texted code."""
    return sms.confirm(ctx.uow, ctx.principal.id, ctx.body.code)


@accounts_api.post("/mfa/sms/disable", body=CodeRequest, response=MfaStatus, auth=("user",),
                   idempotent=False, rate_limits=[(limits.MFA_MANAGE, "principal")])
def disable_sms(ctx: Context):
    """Turn the SMS second factor off with a texted code (POST /v1/me/mfa/sms first)."""
    return sms.disable(ctx.uow, ctx.principal.id, ctx.body.code)
