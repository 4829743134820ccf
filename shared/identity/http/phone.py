"""Phone sign-in / sign-up with an SMS one-time code: /v1/auth/phone/start and /verify.

Per-IP and per-number limits are enforced in ``shared.identity.factors.otp`` (the number comes from the
body; the values are settings). Both routes are public and not idempotent: a replayed
Idempotency-Key must never hand one anonymous caller another's tokens.
"""
from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from shared.identity.factors import phone_signin
from shared.identity.http.api import auth_api
from shared.identity.responses import PhoneSignIn, PhoneSignInAnswer, PhoneVerification
from shared.identity.sessions.tokens import no_store
from shared.platform.models import RequestModel
from shared.platform.router import PUBLIC, Context


class PhoneStartRequest(RequestModel):
    phone: str = Field(..., min_length=1, max_length=32,
                       description="E.164 (+85512345678) or Cambodian national format (012 345 678).")
    purpose: Literal["signin"] = "signin"


class PhoneVerifyRequest(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    phone: str = Field(..., min_length=1, max_length=32)
    code: str = Field(..., min_length=1, max_length=16)


@auth_api.post("/phone/start", body=PhoneStartRequest, response=PhoneVerification, auth=PUBLIC,
               status=202, idempotent=False)
def phone_start(ctx: Context):
    """Text a 6-digit code to the number (sign in, or sign up if the number is new)."""
    return phone_signin.start_verification(ctx.uow, phone=ctx.body.phone, purpose=ctx.body.purpose,
                                  ip=ctx.ip)


@auth_api.post("/phone/verify", body=PhoneVerifyRequest, response=PhoneSignInAnswer, auth=PUBLIC,
               idempotent=False, other_statuses=(201,))
def phone_verify(ctx: Context):
    """Check the code: signs in the number's user, creating it if new; returns tokens."""
    out = phone_signin.sign_in_with_code(ctx.uow, phone=ctx.body.phone, code=ctx.body.code.strip(),
                                ip=ctx.ip, user_agent=ctx.request.headers.get("User-Agent"))
    new_user = isinstance(out, PhoneSignIn) and out.new_user
    return no_store(PhoneSignInAnswer(out), status=201 if new_user else 200)
