"""SMS as a second factor: a code texted to the account's verified phone.

Enrolment needs a verified phone (``/v1/me/phone``) and a code texted to it now, so the owner
proves the number still reaches them (``POST /v1/me/mfa/sms`` texts it, ``.../confirm`` checks
it). ``user_mfa/{usr_…}.sms_enabled`` then turns the factor on and ``users.mfa_enabled`` with
it. At sign-in the challenge lists ``sms``; ``POST /v1/auth/mfa/sms`` texts a code bound to the
challenge's user (purpose ``mfa``), and ``POST /v1/auth/mfa/verify`` with ``method: "sms"``
consumes it (``factors.challenges``). Codes, limits and pumping protection are those of
``factors.otp``; the SMS leaves after commit through notify. NIST SP 800-63B calls SMS a "restricted" authenticator;
TOTP stays the recommended factor and both can be on.
"""
from __future__ import annotations

from shared.identity.factors import mfa, otp
from shared.identity.factors.phone import mask, parse_phone
from shared.identity.responses import MfaSmsEnrollment, MfaStatus
from shared.identity.users import directory
from shared.platform.errors import Unprocessable

PURPOSE = "mfa"


def _verified_phone(uow, user_id: str) -> str:
    usnap = uow.get(directory.user_ref(uow.db, user_id))
    user = usnap.to_dict() if usnap.exists else {}
    if not (user.get("phone") and user.get("phone_verified")):
        raise Unprocessable("Add and verify a phone number first (POST /v1/me/phone).",
                            code="phone_not_verified")
    return user["phone"]


def begin(uow, user_id: str) -> MfaSmsEnrollment:
    """Text a code to the verified phone to prove it before turning the factor on."""
    phone = _verified_phone(uow, user_id)
    otp.issue_code(uow, parse_phone(phone), PURPOSE, user_id=user_id)
    return MfaSmsEnrollment(phone=mask(phone), expires_in=otp.otp_settings(uow.deps).ttl_seconds)


def confirm(uow, user_id: str, code: str) -> MfaStatus:
    phone = _verified_phone(uow, user_id)
    otp.verify_code(uow, phone=phone, code=code, purpose=PURPOSE, ip=None, user_id=user_id)
    doc = mfa.factors_doc(uow, user_id)
    mfa.set_sms_enabled(uow, user_id, True)
    uow.update(directory.user_ref(uow.db, user_id), {"mfa_enabled": True})
    return mfa.status_of({**doc, "sms_enabled": True}, phone=mask(phone))


def disable(uow, user_id: str, code: str) -> MfaStatus:
    """Turn SMS off with a code texted now (``begin`` first); TOTP, if on, stays on."""
    phone = _verified_phone(uow, user_id)
    doc = mfa.factors_doc(uow, user_id)
    if not doc.get("sms_enabled"):
        raise Unprocessable("SMS two-factor authentication is not enabled.", code="mfa_not_enabled")
    otp.verify_code(uow, phone=phone, code=code, purpose=PURPOSE, ip=None, user_id=user_id)
    mfa.set_sms_enabled(uow, user_id, False)
    uow.update(directory.user_ref(uow.db, user_id), {"mfa_enabled": bool(doc.get("totp_secret"))})
    return mfa.status_of({**doc, "sms_enabled": False})


def send_code(uow, user_id: str) -> str:
    """Text a sign-in code (purpose ``mfa``) to the user's verified phone; returns the phone.
    The sign-in challenge that asks for it is ``factors.challenges.send_sms_code``."""
    phone = _verified_phone(uow, user_id)
    otp.issue_code(uow, parse_phone(phone), PURPOSE, user_id=user_id)
    return phone


def code_ttl_seconds(deps) -> int:
    return otp.otp_settings(deps).ttl_seconds


def consume(uow, user_id: str, code: str) -> bool:
    """Whether ``code`` is the live SMS code of ``user_id`` (consumed if so). A wrong code
    counts against the SMS code's own attempts as well as the challenge's."""
    from shared.platform.errors import InvalidRequest
    usnap = uow.get(directory.user_ref(uow.db, user_id))
    phone = (usnap.to_dict() or {}).get("phone") if usnap.exists else None
    if not phone:
        return False
    try:
        otp.verify_code(uow, phone=phone, code=code, purpose=PURPOSE, ip=None, user_id=user_id)
    except InvalidRequest:
        return False
    return True
