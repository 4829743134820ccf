"""The signed-in user's phone number: /v1/me/phone (add, then verify with the texted code)."""
from __future__ import annotations

from pydantic import ConfigDict, Field

from shared.identity import limits
from shared.identity.users import user_phone
from shared.identity.http.api import accounts_api
from shared.identity.resources import User
from shared.identity.responses import PhoneVerification
from shared.platform.models import RequestModel
from shared.platform.ratelimit import Limit
from shared.platform.router import Context

# Message sends are shared (exact) limits: auth.* namespace (ADR 0007).
PHONE_START_PRINCIPAL = Limit("auth.me_phone.start.principal", 10, 3600)


class AddPhoneRequest(RequestModel):
    phone: str = Field(..., min_length=1, max_length=32,
                       description="E.164 (+85512345678) or Cambodian national format.")


class VerifyPhoneRequest(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    phone: str = Field(..., min_length=1, max_length=32)
    code: str = Field(..., min_length=1, max_length=16)


@accounts_api.post("/phone", body=AddPhoneRequest, response=PhoneVerification, auth=("user",),
                   status=202, idempotent=False,
                   rate_limits=[(PHONE_START_PRINCIPAL, "principal")])
def add_phone(ctx: Context):
    """Text a 6-digit code to a number to add it to this account."""
    return user_phone.start(ctx.uow, user_id=ctx.principal.id, phone=ctx.body.phone)


@accounts_api.post("/phone/verify", body=VerifyPhoneRequest, response=User, auth=("user",),
                   idempotent=False, rate_limits=[(limits.ME_WRITE, "principal")])
def verify_phone(ctx: Context):
    """Confirm the number with the texted code; it becomes the account's verified phone."""
    return user_phone.verify(ctx.uow, user_id=ctx.principal.id, phone=ctx.body.phone,
                             code=ctx.body.code.strip(), ip=ctx.ip)
